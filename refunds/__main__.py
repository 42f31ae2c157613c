"""`python -m refunds` runs the `refunds` command line."""

from refunds.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
