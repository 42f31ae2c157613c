"""`python -m sandbox.gateway`: serve the gateway (see `sandbox.gateway.app.main`)."""

from sandbox.gateway.app import main

main()
