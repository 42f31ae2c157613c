"""Intake: refund requests from platforms, their orders, API keys and erasure."""

# Imported with the package, so that every way of loading this service's events (the
# application, the audit CLI, tests; a domain-only import too) reads the shapes earlier
# builds stored through the upcasters.
from services.intake import upcasting as upcasting
