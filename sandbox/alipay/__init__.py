"""Alipay emulator: the open platform's `gateway.do` for `alipay.trade.refund`,
`alipay.trade.fastpay.refund.query` and `alipay.data.dataservice.bill.downloadurl.query`,
RSA2-signed answers and refund notifications, the GBK trade bill, and fault switches.
Written from Alipay's public docs; described in sandbox/ALIPAY.md.

Modules: protocol (signing, answers), dev_keys, faults, store, notifier, bill, app.
"""

from sandbox.alipay.app import DEFAULT_PORT, create_app, main
from sandbox.alipay.dev_keys import DEV_APP_ID, dev_account

__all__ = ["DEFAULT_PORT", "DEV_APP_ID", "create_app", "dev_account", "main"]
