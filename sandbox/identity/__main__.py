"""`python -m sandbox.identity`: serve the identity provider (see `sandbox.identity.app.main`)."""

from sandbox.identity.app import main

main()
