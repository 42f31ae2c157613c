"""Integration tests of the webhook endpoints API: a tenant sees only its own endpoints,
registration replays under an idempotency key, test events, the catalog of event types,
validation problems, the delivery log's pages, and deleted endpoints."""

from __future__ import annotations

import asyncio

import pytest

from shared.contracts import EVENT_TYPES
from tests.support.webhooks import (
    ACME,
    GLOBEX,
    World,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    verify,
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)


async def test_another_tenants_endpoint_is_not_found(world: World) -> None:
    endpoint = await world.register()
    await world.event()
    base = f"/v1/webhook_endpoints/{endpoint['id']}"
    delivery = "wd_" + "0" * 32
    answers = [
        await world.client.get(base, headers=GLOBEX),
        await world.client.post(base, json={"description": "mine"}, headers=GLOBEX),
        await world.client.post(f"{base}/rotate_secret", headers=GLOBEX),
        await world.client.get(f"{base}/deliveries", headers=GLOBEX),
        await world.client.post(f"{base}/deliveries/{delivery}/redeliver", headers=GLOBEX),
        await world.client.delete(base, headers=GLOBEX),
    ]
    assert [a.status_code for a in answers] == [404] * 6
    assert (await world.client.get("/v1/webhook_endpoints", headers=GLOBEX)).json()["data"] == []
    assert (await world.client.get(base)).status_code == 401
    assert (await world.endpoint(endpoint["id"]))["description"] == ""


async def test_an_idempotency_key_replays_the_registration(world: World) -> None:
    body = {"url": world.receiver.url, "event_types": ["refund.requested.v1"]}
    keyed = {**ACME, "Idempotency-Key": "reg-1"}
    first = await world.client.post("/v1/webhook_endpoints", json=body, headers=keyed)
    again = await world.client.post("/v1/webhook_endpoints", json=body, headers=keyed)
    other = await world.client.post(
        "/v1/webhook_endpoints", json={**body, "description": "x"}, headers=keyed
    )
    other_tenant = await world.client.post(
        "/v1/webhook_endpoints", json=body, headers={**GLOBEX, "Idempotency-Key": "reg-1"}
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert other_tenant.status_code == 201 and other_tenant.json()["id"] != first.json()["id"]
    listed = await world.client.get("/v1/webhook_endpoints", headers=ACME)
    assert [e["id"] for e in listed.json()["data"]] == [first.json()["id"]]

    # Once the endpoint is deleted its secret is shredded: a replay cannot show it again.
    gone = await world.client.delete(f"/v1/webhook_endpoints/{first.json()['id']}", headers=ACME)
    assert gone.status_code == 200
    late = await world.client.post("/v1/webhook_endpoints", json=body, headers=keyed)
    assert late.status_code == 409, late.text
    assert late.headers["content-type"] == "application/problem+json"
    assert "shredded" in late.json()["detail"]


async def test_a_test_event_goes_to_that_endpoint_alone_signed_and_once(world: World) -> None:
    subscribed = await world.register(event_types=["payout.succeeded.v1"])
    other = await world.register()
    path = f"/v1/webhook_endpoints/{subscribed['id']}/test"
    keyed = {**ACME, "Idempotency-Key": "try-1"}
    async with world.delivering():
        queued = await world.client.post(path, headers=keyed)
        assert queued.status_code == 202, queued.text
        (received,) = await world.requests(1)
        replayed = await world.client.post(path, headers=keyed)
        await asyncio.sleep(0.5)

    assert replayed.status_code == 202 and replayed.headers["idempotent-replayed"] == "true"
    assert len(world.receiver.requests) == 1  # not to `other`, and not twice
    event = verify(subscribed["secret"], received)
    assert event["type"] == "webhook.test.v1" and event["subject"] == subscribed["id"]
    assert event["tenant"] == "acme" and event["data"]["endpoint_id"] == subscribed["id"]
    assert received.headers["webhook-id"] == queued.json()["id"] == replayed.json()["id"]
    (logged,) = (await world.deliveries(subscribed["id"]))["data"]
    assert logged["event_type"] == "webhook.test.v1" and logged["refund_id"] is None
    assert logged["state"] == "delivered"
    assert (await world.deliveries(other["id"]))["data"] == []

    off = await world.client.post(
        f"/v1/webhook_endpoints/{other['id']}", json={"enabled": False}, headers=ACME
    )
    assert off.status_code == 200
    refused = await world.client.post(f"/v1/webhook_endpoints/{other['id']}/test", headers=ACME)
    assert refused.status_code == 409 and refused.json()["type"].endswith("endpoint-disabled")


async def test_the_event_types_to_subscribe_to_are_listed_with_their_schemas(
    world: World,
) -> None:
    listed = await world.client.get("/v1/webhook_event_types", headers=ACME)
    assert listed.status_code == 200, listed.text
    types = {t["type"]: t for t in listed.json()["data"]}
    # Intake's platform-key events travel on its topic for notify's own use: not offered.
    internal = {"api_key.issued.v1", "api_key.revoked.v1"}
    assert set(types) == {*EVENT_TYPES, "webhook.endpoint_disabled.v1"} - internal
    assert all(t["description"] for t in types.values())  # each says what it means
    paid = types["payout.succeeded.v1"]
    assert paid["source"] == "payout" and "expected_arrival" in paid["data_schema"]["properties"]
    assert types["review.evidence_received.v1"]["source"] == "review"
    assert types["customer.erased.v1"]["source"] == "intake"
    assert types["webhook.endpoint_disabled.v1"]["source"] == "notify"
    assert "webhook.test.v1" not in types  # sent on request only, never subscribed to
    # Every listed type can be subscribed to; an unknown one is refused, pointing here.
    every = await world.register(event_types=sorted(types))
    assert sorted(every["event_types"]) == sorted(types)
    body = {"url": world.receiver.url, "event_types": ["payout.paid.v1"]}
    refused = await world.client.post("/v1/webhook_endpoints", json=body, headers=ACME)
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["code"] == "unknown_event_type" and "/v1/webhook_event_types" in error["message"]
    anonymous = await world.client.get("/v1/webhook_event_types")
    assert anonymous.status_code == 401


async def test_validation_problems_name_each_bad_field(world: World) -> None:
    world.app.webhooks.allow_private = False
    bad = await world.client.post(
        "/v1/webhook_endpoints",
        json={"url": "ftp://hooks.example.com/x", "event_types": ["refund.requested.v1", "nope"]},
        headers=ACME,
    )
    shape = await world.client.post(
        "/v1/webhook_endpoints",
        json={"event_types": [], "alert_email": "not-an-address", "colour": "red"},
        headers=ACME,
    )
    mixed = await world.client.post(
        "/v1/webhook_endpoints",
        json={"url": "https://8.8.8.8/hook", "event_types": ["*", "refund.requested.v1"]},
        headers=ACME,
    )
    rotation = await world.client.post(
        "/v1/webhook_endpoints/we_" + "0" * 32 + "/rotate_secret",
        json={"expire_previous_after_seconds": 86401},
        headers=ACME,
    )

    assert bad.status_code == 422
    assert {(e["field"], e["code"]) for e in bad.json()["errors"]} == {
        ("url", "unsafe_url"),
        ("event_types.1", "unknown_event_type"),
    }
    assert shape.status_code == 422
    assert {e["field"] for e in shape.json()["errors"]} == {
        "url",
        "event_types",
        "alert_email",
        "colour",
    }
    assert mixed.status_code == 422
    assert [e["field"] for e in mixed.json()["errors"]] == ["event_types"]
    assert rotation.status_code == 422
    assert rotation.json()["errors"][0]["field"] == "expire_previous_after_seconds"


async def test_the_delivery_log_pages_newest_first(world: World) -> None:
    endpoint = await world.register()
    events = [await world.event() for _ in range(3)]
    first = await world.deliveries(endpoint["id"], limit=2)
    rest = await world.deliveries(endpoint["id"], limit=2, starting_after=first["data"][-1]["id"])
    delivered = await world.deliveries(endpoint["id"], state="delivered")
    unknown = await world.client.get(
        f"/v1/webhook_endpoints/{endpoint['id']}/deliveries",
        params={"starting_after": "wd_" + "f" * 32},
        headers=ACME,
    )

    assert first["has_more"] is True and rest["has_more"] is False
    paged = [d["event_id"] for d in first["data"] + rest["data"]]
    assert paged == [e.id for e in reversed(events)]
    assert all(d["state"] == "pending" and d["attempts"] == [] for d in first["data"])
    assert delivered["data"] == []
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "query.starting_after"


async def test_a_deleted_endpoint_gets_nothing_and_is_gone_from_the_api(world: World) -> None:
    endpoint = await world.register()
    await world.event()
    deleted = await world.client.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    await world.event()
    async with world.delivering():
        await asyncio.sleep(0.6)

    assert world.receiver.requests == []
    missing = await world.client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert missing.status_code == 404
    assert (await world.client.get("/v1/webhook_endpoints", headers=ACME)).json()["data"] == []
