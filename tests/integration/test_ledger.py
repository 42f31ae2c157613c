"""The ledger over real PostgreSQL: stamps, hashes, checkpoints, and tampering caught precisely."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.ledger import Ledger, leaf_of
from shared.ledger_verify import Report, verify_ledger
from shared.signing import Signer, dev_seed
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.support.factories import refund_body
from tests.support.intake import ACME, Intake, serve_intake


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 3600), DEV_JWT_SECRET)}"}


AUDITOR = staff("audrey", "auditor")
REVIEWER = staff("ann", "reviewer")
PUBLIC_KEY = Signer(dev_seed("intake")).public_key


@pytest.fixture
def intake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, "postgres") as served:
        yield served


@pytest.fixture
def ledger(intake: Intake) -> Ledger:
    from services.intake.audit import refund_of

    return Ledger(intake.app, signer=Signer(dev_seed("intake")), correlate=refund_of)


def _table(intake: Intake) -> str:
    return f'"{intake.settings.database_schema}".intake_events'


def _sql(intake: Intake, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(str(intake.settings.database_url), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _rewrite(intake: Intake, position: int, old: str, new: str) -> None:
    """Edit a stored event's bytes in place, as someone with database access could."""
    (state,) = _sql(
        intake, f"SELECT state FROM {_table(intake)} WHERE notification_id = %s", position
    )[0]
    assert old in bytes(state).decode()
    _sql(
        intake,
        f"UPDATE {_table(intake)} SET state = %s WHERE notification_id = %s",
        bytes(state).decode().replace(old, new).encode(),
        position,
    )


def _refunds(intake: Intake, count: int) -> list[dict[str, Any]]:
    return [intake.create(refund_body()) for _ in range(count)]


def _kinds(report: Report) -> list[tuple[str, int | None]]:
    return [(finding.kind, finding.position) for finding in report.findings]


def test_a_clean_ledger_verifies_with_signed_checkpoints(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 3)
    first = ledger.checkpoint()
    _refunds(intake, 2)
    second = ledger.checkpoint()
    assert first is not None and second is not None and second.size > first.size
    assert ledger.checkpoint() == second  # an unchanged head is signed once
    report = verify_ledger(ledger, PUBLIC_KEY)
    assert report.ok, report.findings
    assert report.sealed == report.events == second.size
    assert report.verified_checkpoints == 2
    assert report.signed_through == second.position


def test_entries_carry_the_actor_the_request_and_the_refund(intake: Intake, ledger: Ledger) -> None:
    response = intake.client.post("/v1/refunds", json=refund_body(), headers=ACME)
    assert response.status_code == 201
    request_id = response.headers["request-id"]
    refund = response.json()
    intake.approve(refund)  # applied as the consumer would, from review's event
    ledger.seal()
    entries = ledger.for_refund(refund["id"])
    requested = next(e for e in entries if e.type == "RefundRequest.Requested")
    assert requested.actor == "tenant:acme"
    assert requested.via is not None and requested.via.startswith("key:")
    assert requested.causation == request_id
    approved = next(e for e in entries if e.type == "RefundRequest.Approved")
    assert approved.actor == "system:auto_approve.within_limit"  # who decided, from the event
    assert approved.via == "event:review.approved.v1"
    assert approved.causation is not None and approved.causation != request_id
    # The order's reservation is filed under the same refund.
    assert "Order.Reserved" in {e.type for e in entries}


def test_audit_log_pages_in_order_for_auditors_only(intake: Intake) -> None:
    _refunds(intake, 3)
    assert intake.client.get("/v1/audit/log").status_code == 401
    assert intake.client.get("/v1/audit/log", headers=REVIEWER).status_code == 403
    first = intake.client.get("/v1/audit/log?limit=4", headers=AUDITOR).json()
    assert first["has_more"] is True
    positions = [entry["position"] for entry in first["data"]]
    assert positions == sorted(positions) and len(positions) == 4
    rest = intake.client.get(
        f"/v1/audit/log?after={first['next_after']}&limit=1000", headers=AUDITOR
    ).json()
    assert rest["has_more"] is False
    assert rest["data"][0]["position"] > positions[-1]
    assert rest["data"][0]["data"] is not None and "_audit" not in rest["data"][0]["data"]
    bad = intake.client.get("/v1/audit/log?limit=0&after=-1", headers=AUDITOR)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert {error["field"] for error in bad.json()["errors"]} >= {"query.limit", "query.after"}


def test_checkpoint_on_demand_and_published_key(intake: Intake) -> None:
    _refunds(intake, 1)
    made = intake.client.post("/v1/audit/checkpoints", headers=AUDITOR)
    assert made.status_code == 200, made.text
    listed = intake.client.get("/v1/audit/checkpoints", headers=AUDITOR).json()
    assert listed["public_key"] == PUBLIC_KEY
    assert listed["data"][-1]["head"] == made.json()["head"]


def test_an_altered_event_is_named(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 3)
    ledger.checkpoint()
    victim = ledger.entries(after=3, limit=1)[0]
    _rewrite(intake, victim.position, "12900", "1290000")
    report = verify_ledger(ledger, PUBLIC_KEY)
    assert ("altered", victim.position) in _kinds(report)
    assert {kind for kind, _ in _kinds(report)} == {"altered", "checkpoint_mismatch"}


def test_a_deleted_event_is_named(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 3)
    ledger.checkpoint()
    victim = ledger.entries(after=5, limit=1)[0]
    _sql(intake, f"DELETE FROM {_table(intake)} WHERE notification_id = %s", victim.position)
    report = verify_ledger(ledger, PUBLIC_KEY)
    assert ("deleted", victim.position) in _kinds(report)
    assert "altered" not in {kind for kind, _ in _kinds(report)}


def test_swapped_rows_are_named_as_reordered(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 3)
    ledger.checkpoint()
    a, b = ledger.entries(after=2, limit=2)
    table = _table(intake)
    _sql(intake, f"UPDATE {table} SET notification_id = -1 WHERE notification_id = %s", a.position)
    _sql(
        intake,
        f"UPDATE {table} SET notification_id = %s WHERE notification_id = %s",
        a.position,
        b.position,
    )
    _sql(intake, f"UPDATE {table} SET notification_id = %s WHERE notification_id = -1", b.position)
    report = verify_ledger(ledger, PUBLIC_KEY)
    assert ("reordered", a.position) in _kinds(report)
    assert ("reordered", b.position) in _kinds(report)
    assert not {"deleted", "inserted", "altered"} & {kind for kind, _ in _kinds(report)}


def test_an_inserted_event_is_named(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 1)
    # Burn one position so that a gap lies inside the range sealed later.
    (gap,) = _sql(
        intake,
        "SELECT nextval(pg_get_serial_sequence(%s, 'notification_id'))",
        _table(intake),
    )[0]
    _refunds(intake, 1)
    ledger.checkpoint()
    originator, version, topic, state = _sql(
        intake,
        f"SELECT originator_id, originator_version, topic, state FROM {_table(intake)} "
        "ORDER BY notification_id LIMIT 1",
    )[0]
    _sql(
        intake,
        f"INSERT INTO {_table(intake)} "
        "(originator_id, originator_version, topic, state, notification_id) "
        "VALUES (%s, %s, %s, %s, %s)",
        originator,
        version + 100,
        topic,
        state,
        gap,
    )
    report = verify_ledger(ledger, PUBLIC_KEY)
    assert ("inserted", gap) in _kinds(report)


def test_rewriting_event_and_ledger_together_breaks_the_signed_checkpoint(
    intake: Intake, ledger: Ledger
) -> None:
    _refunds(intake, 2)
    signed = ledger.checkpoint()
    assert signed is not None
    victim = ledger.entries(after=1, limit=1)[0]
    _rewrite(intake, victim.position, "12900", "1")
    # The forger recomputes every hash of the ledger from the forged events...
    schema = intake.settings.database_schema
    _sql(intake, f'DELETE FROM "{schema}".audit_ledger')
    ledger.seal()
    report = verify_ledger(ledger, PUBLIC_KEY)
    # ...which the leaves cannot tell, but the signed head can.
    assert [kind for kind, _ in _kinds(report)] == ["checkpoint_mismatch"]
    assert f"between positions 1 and {signed.position}" in report.findings[0].detail


def test_forged_and_missing_checkpoints(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 2)
    published = ledger.checkpoint()
    assert published is not None
    schema = intake.settings.database_schema
    _sql(intake, f'DELETE FROM "{schema}".audit_checkpoints')
    forged = dataclasses.replace(published, signature=Signer(dev_seed("mallory")).sign(b"x"))
    _sql(
        intake,
        f'INSERT INTO "{schema}".audit_checkpoints VALUES (%s, %s, %s, %s, %s, %s)',
        forged.size + 1,
        forged.position,
        forged.head,
        forged.at,
        forged.key_id,
        forged.signature,
    )
    report = verify_ledger(ledger, PUBLIC_KEY, published=[published])
    kinds = {kind for kind, _ in _kinds(report)}
    assert kinds == {"checkpoint_missing", "bad_signature"}
    assert verify_ledger(ledger, None).findings[0].kind == "bad_signature"  # unchecked is not ok


def test_leaf_covers_the_stamp(intake: Intake, ledger: Ledger) -> None:
    _refunds(intake, 1)
    ledger.seal()
    entry = ledger.entries(limit=1)[0]
    stored = ledger.stored([entry.position])[entry.position]
    assert leaf_of(stored)[1] == entry.leaf
    _rewrite(intake, entry.position, '"actor":"tenant:acme"', '"actor":"tenant:other"')
    assert ("altered", entry.position) in _kinds(verify_ledger(ledger, PUBLIC_KEY))


def test_sealers_in_two_processes_share_one_sqlite_ledger(tmp_path: Path) -> None:
    """Two sealers (a service and `refunds audit verify --seal`) race on one SQLite file while
    events keep arriving: neither fails on the lock, nothing is sealed twice, all verifies."""
    from eventsourcing.domain import Aggregate

    from shared.application import ServiceApplication
    from shared.settings import ServiceSettings
    from shared.store import store_env

    class Probe(ServiceApplication):
        name = "Probe"

    class Note(Aggregate):
        def __init__(self, text: str) -> None:
            self.text = text

    env = store_env(ServiceSettings(data_dir=tmp_path), "probe")
    writer, first, second = Probe(env=env), Probe(env=env), Probe(env=env)
    ledgers = [Ledger(app, signer=Signer(dev_seed("probe"))) for app in (first, second)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def seal(ledger: Ledger) -> None:
        while not stop.is_set():
            try:
                ledger.seal()
            except BaseException as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=seal, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for n in range(300):
        writer.save(Note(f"note {n}"))
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    ledgers[0].seal()
    report = verify_ledger(ledgers[0], Signer(dev_seed("probe")).public_key)
    assert report.ok, report.findings
    assert report.sealed == report.events == 300
    for app in (writer, first, second):
        app.close()
