"""Review: assesses each refund request by policy; staff decide the cases it cannot."""

# Imported with the package, so that every way of loading this service's events (the
# application, the audit CLI, tests; a domain-only import too) reads the shapes earlier
# builds stored through the upcasters.
from services.review import upcasting as upcasting
