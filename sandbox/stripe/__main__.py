"""`python -m sandbox.stripe --port N --data-dir D`: serve the Stripe emulator."""

from sandbox.stripe.app import main

main()
