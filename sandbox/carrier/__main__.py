"""`python -m sandbox.carrier`: serve the carrier sandbox (see `sandbox.carrier.app.main`)."""

from sandbox.carrier.app import main

main()
