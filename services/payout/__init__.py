"""Payout: pays approved refunds by their method's route, and settles and reconciles them."""

# Imported with the package, so that every way of loading this service's events (the
# application, the audit CLI, tests; a domain-only import too) reads the shapes earlier
# builds stored through the upcasters.
from services.payout import upcasting as upcasting
