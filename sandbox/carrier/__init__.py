"""Sandbox carrier: a tracking provider speaking Kuaidi100's (快递100) protocol over real HTTP.

Subscribers `POST /poll` a carrier code, a number and a callback URL; when a shipment moves
on, the sandbox pushes its whole trail, signed with MD5(param + salt), retrying when the
receiver does not answer {"result": true, "returnCode": "200"}; `POST /poll/query.do`
answers the trail in real time. Test controls under /sandbox create and advance shipments
and switch faults on. The protocol is described in sandbox/CARRIER.md.

One module per part: protocol (codes, carriers, stages, signatures, request models), faults,
trail (events and the pushed/queried JSON), store, pushes and app (the HTTP app and `main`;
`python -m sandbox.carrier`).
"""

from sandbox.carrier.app import create_app, main
from sandbox.carrier.faults import Faults, PushFaults
from sandbox.carrier.protocol import (
    CARRIERS,
    DEFAULT_CUSTOMER,
    DEFAULT_KEY,
    QUERY_CODES,
    STAGES,
    STORE_FILE,
    SUBSCRIBE_CODES,
    Carrier,
    md5_upper,
    push_sign,
    query_sign,
)
from sandbox.carrier.store import Store

__all__ = [
    "CARRIERS",
    "DEFAULT_CUSTOMER",
    "DEFAULT_KEY",
    "QUERY_CODES",
    "STAGES",
    "STORE_FILE",
    "SUBSCRIBE_CODES",
    "Carrier",
    "Faults",
    "PushFaults",
    "Store",
    "create_app",
    "main",
    "md5_upper",
    "push_sign",
    "query_sign",
]
