"""Payment providers, one module or package each, behind one route interface (`base.py`):

- `gateway` — the sandbox gateway's protocol (sandbox/GATEWAY.md), the default route;
- `store_balance` — a credit in payout's own ledger;
- `stripe`, `alipay`, `wechatpay` — a tenant's own merchant account at that provider,
  on the provider's protocol, signatures and idempotency rules.
"""
