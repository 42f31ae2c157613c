"""`python -m services.payout` runs the payout service on its own."""

from services.payout.bootstrap import build
from shared.runtime import serve

serve(build)
