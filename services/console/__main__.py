"""`python -m services.console` runs the staff console on its own."""

from services.console.bootstrap import build
from shared.runtime import serve

serve(build)
