"""Sandbox payment gateway: a real HTTP refund API emulating what refund providers document.

Merchant refund numbers make repeats no-ops (WeChat Pay ``out_refund_no``, Alipay
``out_request_no``, Stripe idempotency keys); refunds move through ``processing`` to
``success``, ``closed`` or ``abnormal``; completions are announced by signed callbacks;
a ledger and daily settlement reports support reconciliation; control switches inject the
faults real providers exhibit. The protocol is described in sandbox/GATEWAY.md.

One module per part: protocol (names, requests, signatures), arrival, fx, faults, store,
callbacks, settlement and app (the HTTP app and `main`; `python -m sandbox.gateway`).
"""

from sandbox.gateway.app import create_app, main
from sandbox.gateway.arrival import ARRIVAL_RULES, ArrivalRule, add_business_days, arrival_estimate
from sandbox.gateway.faults import Faults, Plan, SettlementRules
from sandbox.gateway.fx import FX_AS_OF, FX_RATES, FX_SOURCE
from sandbox.gateway.protocol import (
    CALLBACK_ID_HEADER,
    DEFAULT_CALLBACK_SECRET,
    LEDGER_COLUMNS,
    LEDGER_FILE,
    REPLAY_HEADER,
    SIGNATURE_HEADER,
    ConflictError,
    ControlRequest,
    RefundRequest,
    sign,
    signature_header,
)
from sandbox.gateway.settlement import render_settlement
from sandbox.gateway.store import Store, refund_view

__all__ = [
    "ARRIVAL_RULES",
    "CALLBACK_ID_HEADER",
    "DEFAULT_CALLBACK_SECRET",
    "FX_AS_OF",
    "FX_RATES",
    "FX_SOURCE",
    "LEDGER_COLUMNS",
    "LEDGER_FILE",
    "REPLAY_HEADER",
    "SIGNATURE_HEADER",
    "ArrivalRule",
    "ConflictError",
    "ControlRequest",
    "Faults",
    "Plan",
    "RefundRequest",
    "SettlementRules",
    "Store",
    "add_business_days",
    "arrival_estimate",
    "create_app",
    "main",
    "refund_view",
    "render_settlement",
    "sign",
    "signature_header",
]
