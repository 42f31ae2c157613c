"""`python -m services.review` runs the review service on its own."""

from services.review.bootstrap import build
from shared.runtime import serve

serve(build)
