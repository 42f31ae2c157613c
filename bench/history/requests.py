"""Intake's side of a seeded refund: the platform's request, as `POST /v1/refunds` records it
(sealed, validated, reserved on its order), many to one transaction; and the customers' keys,
created in bulk instead of one write transaction per new customer."""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.history.pipeline import Seat, stamped, write
from bench.loadgen import refund_body
from services.intake.api import _draft
from services.intake.application import IntakeApplication
from services.intake.schemas import RefundCreate
from shared.auth import DEV_TENANT
from shared.ids import public_id
from shared.keystore import NONCE_BYTES, Keystore, Subject, _wrap_aad

# Keys a seeding created stay in its keystore's memory for the whole run.
KEPT_SECONDS = 24 * 3600.0


def request_body(run: str, number: int) -> dict[str, Any]:
    """The request of seeded refund `number`: an automatically approved one (bench/loadgen's
    `auto`), with its own order, customer and payment reference."""
    order_id = f"H{run}-{number:07d}"
    body = refund_body("auto", order_id, f"HC{run}-{number:07d}")
    body["order"]["payment"]["reference"] = f"H{run}{number:07d}"
    body["metadata"] = {"source": "bench.history"}
    return body


def create_keys(keys: Keystore, subjects: Iterable[Subject]) -> int:
    """Give each subject (tenant, customer) its first key, as `Keystore.current_key` would,
    in one transaction, and keep them in the keystore's memory for the run."""
    rows = []
    now = datetime.now(UTC).isoformat()
    kept = time.monotonic() + KEPT_SECONDS
    master: AESGCM = keys._master
    for subject in subjects:
        key_id = f"ck_{secrets.token_hex(8)}_g1"
        raw = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + master.encrypt(nonce, raw, _wrap_aad(key_id, subject))
        rows.append((key_id, *subject, 1, base64.b64encode(wrapped).decode(), now))
        keys._current[subject] = (kept, key_id)
        keys._keys[key_id] = (kept, AESGCM(raw), subject)
    table = keys._table
    with table.transaction() as db:
        db.executemany(
            table.sql(
                "INSERT INTO {keys} (key_id, tenant, customer_id, generation, wrapped, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            rows,
        )
    keys.cache_seconds = KEPT_SECONDS
    return len(rows)


def request_refunds(seat: Seat, run: str, numbers: range) -> list[str]:
    """Record the requests of `numbers` (as `IntakeApplication.request_refund` does, without
    an idempotency key), in one transaction; their public ids."""
    app: IntakeApplication = seat.app  # type: ignore[assignment]
    drafts = [_draft(RefundCreate.model_validate(request_body(run, n))) for n in numbers]
    create_keys(app.keys, [(DEV_TENANT, draft["order"]["customer_id"]) for draft in drafts])
    refund_ids = []
    stored = []
    created = []
    for draft in drafts:
        refund, order = _attempt(app, draft)
        created += [refund, order]
        refund_id = public_id("rf", refund.id)
        refund_ids.append(refund_id)
        # Stamped as the HTTP request would be: the tenant behind the API key.
        stored += stamped(
            app,
            [refund, order],
            actor=f"tenant:{DEV_TENANT}",
            via="bench.history",
            causation=f"req_{secrets.token_hex(8)}",
            correlation=refund_id,
        )
    write(app, stored)
    seat.kept.keep(created)
    seat.kept.check()
    return refund_ids


def _attempt(app: IntakeApplication, draft: dict[str, Any]) -> tuple[Any, Any]:
    """The refund and its order, decided by intake's own `request_refund` logic."""
    decided: list[Any] = []

    def capture(keyed: Any, attempt: Any, answer: Any) -> tuple[Any, bool]:
        _, aggregates = attempt()
        decided.extend(aggregates)
        return aggregates[0], False

    original = app.execute_once
    app.execute_once = capture  # type: ignore[method-assign,assignment]
    try:
        app.request_refund(tenant=DEV_TENANT, draft=draft, actor=f"tenant:{DEV_TENANT}", keyed=None)
    finally:
        app.execute_once = original  # type: ignore[method-assign]
    return decided[0], decided[1]
