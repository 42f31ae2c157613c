"""`python -m sandbox.wechatpay --port N --data-dir D`: serve the WeChat Pay emulator."""

from sandbox.wechatpay.app import main

main()
