"""`python -m services.intake` runs the intake service on its own."""

from services.intake.bootstrap import build
from shared.runtime import serve

serve(build)
