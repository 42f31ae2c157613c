"""Notify: customer messages (messages/) and platform webhooks (webhooks/) over one store."""

# Imported with the package, so that every way of loading this service's events (the
# application, the audit CLI, tests; a domain-only import too) reads the shapes earlier
# builds stored through the upcasters.
from services.notify import upcasting as upcasting
