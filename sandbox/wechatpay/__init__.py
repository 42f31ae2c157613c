"""Sandbox WeChat Pay: an emulator of WeChat Pay APIv3's refund protocol (sandbox/WECHATPAY.md).

protocol (signatures, encryption), ledger (state), faults (switches), notifier (callbacks),
bill (the REFUND bill), dev_keys (public dev key material), app (`create_app`, `main`).
"""

from sandbox.wechatpay.app import DEFAULT_PAYMENT_TOTAL, create_app, main
from sandbox.wechatpay.dev_keys import dev_account

__all__ = ["DEFAULT_PAYMENT_TOTAL", "create_app", "dev_account", "main"]
