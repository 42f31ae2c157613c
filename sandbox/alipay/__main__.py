"""`python -m sandbox.alipay`: serve the Alipay emulator (see `sandbox.alipay.app.main`)."""

from sandbox.alipay.app import main

main()
