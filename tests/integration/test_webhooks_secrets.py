"""Integration tests of webhook signing secrets: a rotation signs with both secrets until
the overlap expires; secrets are stored sealed and shredded with their endpoint; a secret
stored in clear by an earlier build still signs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from standardwebhooks.webhooks import WebhookVerificationError as NotVerified

from tests.support.webhooks import (
    ACME,
    World,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    verify,
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)


async def test_rotation_signs_with_both_secrets_until_the_overlap_expires(world: World) -> None:
    endpoint = await world.register()
    old = endpoint["secret"]
    async with world.delivering():
        await world.event()
        (before,) = await world.requests(1)
        rotated = await world.client.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
            json={"expire_previous_after_seconds": 2},
            headers=ACME,
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != old
        await world.event()
        during = (await world.requests(2))[1]
        await asyncio.sleep(2.1)
        await world.event()
        after = (await world.requests(3))[2]

    verify(old, before)
    with pytest.raises(NotVerified):
        verify(new, before)
    verify(old, during)
    verify(new, during)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verify(new, after)
    with pytest.raises(NotVerified):
        verify(old, after)
    shown = await world.endpoint(endpoint["id"])
    assert "secret" not in shown and shown["previous_secret_expires_at"] is not None


def stored_text(world: World) -> str:
    """Every row of every table of notify's schema, as text."""
    schema = world.settings.database_schema
    with psycopg.connect(world.settings.database_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        assert len(tables) >= 4, tables  # events, tracking, read models, …
        rows = [
            row
            for (table,) in tables
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()  # noqa: S608
        ]
    return "\n".join(
        bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else str(v)
        for row in rows
        for v in row
    )


async def test_secrets_are_stored_sealed_and_shredded_with_their_endpoint(world: World) -> None:
    endpoint = await world.register()
    rotated = await world.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
        json={"expire_previous_after_seconds": 3600},
        headers=ACME,
    )
    assert rotated.status_code == 200, rotated.text
    secrets = [endpoint["secret"], rotated.json()["secret"]]
    async with world.delivering():
        await world.event()
        (received,) = await world.requests(1)
    for secret in secrets:  # both sign during the overlap
        verify(secret, received)

    stored = stored_text(world)
    for secret in secrets:
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
    log = await world.client.get(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert "secret" not in log.json()

    live = world.app.webhooks.endpoint_for("acme", endpoint["id"])
    assert world.app.webhooks.secrets.live(live, datetime.now(UTC)) == secrets[::-1]
    deleted = await world.client.delete(f"/v1/webhook_endpoints/{endpoint['id']}", headers=ACME)
    assert deleted.status_code == 200
    gone = world.app.repository.get(live.id)
    assert (
        world.app.webhooks.secrets.live(gone, datetime.now(UTC)) == []
    )  # shredded, not just unused

    # A deletion stored by a process that died before shredding: deleting again shreds.
    cut_short = await world.register()
    cid = world.app.webhooks.endpoint_for("acme", cut_short["id"]).id
    world.app.update(cid, lambda e: e.delete(actor="tenant:acme"))
    assert world.app.webhooks.secrets.live(world.app.repository.get(cid), datetime.now(UTC))
    again = await world.client.delete(f"/v1/webhook_endpoints/{cut_short['id']}", headers=ACME)
    assert again.status_code == 404
    assert world.app.webhooks.secrets.live(world.app.repository.get(cid), datetime.now(UTC)) == []


async def test_a_secret_stored_in_clear_by_an_earlier_build_still_signs(world: World) -> None:
    endpoint = await world.register()
    uid = world.app.webhooks.endpoint_for("acme", endpoint["id"]).id
    legacy = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a secret as stored before sealing
    world.app.update(
        uid,
        lambda e: e.rotate_secret(
            secret=legacy, previous_expires_at=datetime.now(UTC), actor="tenant:acme"
        ),
    )
    async with world.delivering():
        await world.event()
        (received,) = await world.requests(1)
    verify(legacy, received)
