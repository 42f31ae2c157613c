"""`python -m services.notify` runs the notify service on its own."""

from services.notify.bootstrap import build
from shared.runtime import serve

serve(build)
