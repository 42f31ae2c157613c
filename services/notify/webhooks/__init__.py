"""Platform webhooks: tenants' endpoints, signed deliveries with retries, and their routes."""
