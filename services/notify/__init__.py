"""Notify: customer messages (messages/) and platform webhooks (webhooks/) over one store."""
