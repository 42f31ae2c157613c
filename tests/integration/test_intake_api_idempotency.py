"""Intake's HTTP contract over SQLite and PostgreSQL: idempotency keys (replays, conflicts,
lifecycle posts, concurrent requests, a key free again once it expired)."""

from __future__ import annotations

import threading
from typing import Any

from tests.support.factories import refund_body
from tests.support.intake import ACME, GLOBEX, Intake
from tests.support.intake_api import (
    intake_fixture,  # noqa: F401 (a fixture, used by name)
)

# -- idempotency --------------------------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_a_different_body(intake: Intake) -> None:
    body = refund_body()
    key = ACME | {"Idempotency-Key": "k1"}
    first = intake.client.post("/v1/refunds", json=body, headers=key)
    stored = intake.stored()
    again = intake.client.post("/v1/refunds", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert intake.stored() == stored
    other = intake.client.post("/v1/refunds", json=refund_body(), headers=key)
    assert other.status_code == 409
    assert other.json()["type"].endswith("/idempotency-conflict")
    # Another endpoint with the same key is a different request as well.
    elsewhere = intake.client.post(
        f"/v1/refunds/{first.json()['id']}/withdraw", json={}, headers=key
    )
    assert elsewhere.status_code == 409
    # Keys are per tenant: the same key from another platform is its own refund.
    theirs = intake.client.post(
        "/v1/refunds", json=body, headers=GLOBEX | {"Idempotency-Key": "k1"}
    )
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


def test_a_replay_shows_the_first_answer_even_after_the_refund_moved_on(intake: Intake) -> None:
    key = ACME | {"Idempotency-Key": "k-moved"}
    body = refund_body()
    first = intake.client.post("/v1/refunds", json=body, headers=key)
    assert first.json()["status"] == "submitted"
    intake.approve(first.json())
    now = intake.client.get(f"/v1/refunds/{first.json()['id']}", headers=ACME).json()
    assert now["status"] == "approved"
    # The retry answers exactly what the first request answered, not the refund as it is now.
    replay = intake.client.post("/v1/refunds", json=body, headers=key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    assert replay.json()["status"] == "submitted"


def test_lifecycle_posts_replay_too(intake: Intake) -> None:
    refund = intake.create(refund_body())
    path = f"/v1/refunds/{refund['id']}/withdraw"
    key = ACME | {"Idempotency-Key": "withdraw-1"}
    first = intake.client.post(path, json={"reason": "found it"}, headers=key)
    assert first.status_code == 200 and first.json()["status"] == "withdrawn"
    replay = intake.client.post(path, json={"reason": "found it"}, headers=key)
    assert replay.status_code == 200 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    # Without the key, a second withdrawal is refused, saying why.
    again = intake.client.post(path, json={"reason": "found it"}, headers=ACME)
    assert again.status_code == 409
    assert "already withdrawn" in again.json()["detail"]


def test_concurrent_requests_with_one_key_make_one_refund(intake: Intake) -> None:
    body = refund_body()
    key = ACME | {"Idempotency-Key": "same-time"}
    answers: list[Any] = []
    start = threading.Barrier(8)

    def post() -> None:
        start.wait()
        answers.append(intake.client.post("/v1/refunds", json=body, headers=key))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers][:2]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(1 for a in answers if "idempotent-replayed" not in a.headers) == 1
    listed = intake.client.get(f"/v1/refunds?order_id={body['order']['id']}", headers=ACME)
    assert len(listed.json()["data"]) == 1


def test_a_key_can_name_a_new_request_once_it_expired(intake: Intake) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.idempotency import KeyedRequest
    from tests.support.factories import intake_command

    app = intake.app
    first, replayed = app.request_refund(
        tenant="acme", draft=intake_command(), actor="t", keyed=KeyedRequest("acme", "k", "f1")
    )
    assert not replayed
    again, replayed = app.request_refund(
        tenant="acme", draft=intake_command(), actor="t", keyed=KeyedRequest("acme", "k", "f1")
    )
    assert replayed and again.id == first.id
    a_day_later = datetime.now(UTC) + timedelta(hours=24, seconds=1)
    app.clock = lambda: a_day_later  # type: ignore[method-assign]
    later, replayed = app.request_refund(
        tenant="acme", draft=intake_command(), actor="t", keyed=KeyedRequest("acme", "k", "f2")
    )
    assert not replayed and later.id != first.id
