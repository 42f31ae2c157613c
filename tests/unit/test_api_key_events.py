"""Platform API keys as integration events: issued and revoked keys are published, keys stored
by earlier builds (before keys were published) are announced once, and their stored events
still load."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from services.intake import key_index
from services.intake.application import IntakeApplication
from services.intake.bootstrap import until_done
from services.intake.key_index import announce_keys, list_keys, revoke_key
from services.intake.publishing import to_integration
from services.intake.settings import IntakeSettings
from services.intake.tenants import ApiKey, issue_key, key_hash, tenant_for_hash
from shared.contracts import ApiKeyIssuedV1, ApiKeyRevokedV1
from shared.ids import public_id
from shared.store import store_env

ISSUED_TOPIC = "services.intake.tenants:ApiKey.Issued"
REVOKED_TOPIC = "services.intake.tenants:ApiKey.Revoked"


@pytest.fixture
def settings(tmp_path: Path) -> IntakeSettings:
    return IntakeSettings(env="test", data_dir=tmp_path, relay_enabled=False)


@pytest.fixture
def app(settings: IntakeSettings) -> Iterator[IntakeApplication]:
    app = IntakeApplication(env=store_env(settings, "intake"))
    yield app
    app.close()


def published(app: IntakeApplication) -> list[Any]:
    """What the relay would publish from the whole log, in log order."""
    found = []
    for notification in app.recorder.select_notifications(start=1, limit=1000):
        integration = to_integration(app.mapper.to_domain_event(notification))
        if integration is not None:
            found.append(integration)
    return found


def store_as_earlier_build(app: IntakeApplication, key: ApiKey) -> None:
    """Store `key`'s pending events as builds before this one did: no class_version, and
    neither `announced` on Issued nor `tenant` on Revoked."""
    stored = []
    for domain_event in key.collect_events():
        record = app.mapper.to_stored_event(domain_event)
        state = app.mapper.transcoder.decode(record.state)
        assert state.pop("class_version") == 2
        state.pop("announced" if record.topic == ISSUED_TOPIC else "tenant")
        stored.append(
            type(record)(
                originator_id=record.originator_id,
                originator_version=record.originator_version,
                topic=record.topic,
                state=app.mapper.transcoder.encode(state),
            )
        )
    assert [record.topic for record in stored] in ([ISSUED_TOPIC], [ISSUED_TOPIC, REVOKED_TOPIC])
    app.recorder.insert_events(stored)


def old_key(app: IntakeApplication, name: str, *, revoked: bool = False) -> ApiKey:
    key = ApiKey(
        tenant="acme",
        key_hash=key_hash(name),
        prefix=name[:12],
        label="",
        actor="cli:ops",
        announced=True,  # dropped when stored: earlier builds had no such field
    )
    if revoked:
        key.revoke(actor="cli:ops", reason="leaked")
    store_as_earlier_build(app, key)
    return key


def test_an_issued_key_is_published_with_its_hash_and_never_the_key(
    app: IntakeApplication,
) -> None:
    key = issue_key(app, "acme", label="shop", actor="cli:ops")
    (issued,) = published(app)
    assert isinstance(issued, ApiKeyIssuedV1)
    assert issued.TYPE == "api_key.issued.v1"
    assert issued.refund_id == public_id("ak", ApiKey.create_id(key_hash(key)))
    assert (issued.tenant, issued.key_hash, issued.prefix) == ("acme", key_hash(key), key[:12])
    assert issued.actor == "cli:ops"
    assert key not in json.dumps(issued.model_dump(mode="json"))


def test_a_revoked_key_is_published_with_its_tenant(app: IntakeApplication) -> None:
    key = issue_key(app, "acme", actor="cli:ops")
    revoke_key(app, key[:12], actor="cli:sec", reason="leaked")
    issued, revoked = published(app)
    assert isinstance(revoked, ApiKeyRevokedV1)
    assert revoked.TYPE == "api_key.revoked.v1"
    assert revoked.refund_id == issued.refund_id
    assert (revoked.tenant, revoked.actor) == ("acme", "cli:sec")


def test_new_keys_need_no_announcement(app: IntakeApplication) -> None:
    issue_key(app, "acme", actor="cli:ops")
    assert announce_keys(app) == 0
    assert len(published(app)) == 1


def test_events_stored_by_earlier_builds_still_load(app: IntakeApplication) -> None:
    live = old_key(app, "sk_live_0123456789")
    gone = old_key(app, "sk_gone_0123456789", revoked=True)

    loaded: ApiKey = app.repository.get(live.id)
    assert (loaded.tenant, loaded.announced, loaded.revoked) == ("acme", False, False)
    assert tenant_for_hash(app, key_hash("sk_live_0123456789")) == "acme"
    revoked: ApiKey = app.repository.get(gone.id)
    assert revoked.revoked and revoked.summary()["revoked"] is not None
    assert tenant_for_hash(app, key_hash("sk_gone_0123456789")) is None
    assert [k["prefix"] for k in list_keys(app)] == ["sk_live_0123", "sk_gone_0123"]

    (old_revocation,) = [e for e in app.repository.event_store.get(gone.id)][1:]
    assert isinstance(old_revocation, ApiKey.Revoked)
    assert (old_revocation.actor, old_revocation.reason) == ("cli:ops", "leaked")
    assert old_revocation.tenant == ""  # not recorded by earlier builds


def test_keys_of_earlier_builds_are_announced_once(app: IntakeApplication) -> None:
    live = old_key(app, "sk_live_0123456789")
    old_key(app, "sk_gone_0123456789", revoked=True)
    fresh = issue_key(app, "globex", actor="cli:ops")
    before = app.recorder.max_notification_id()

    assert announce_keys(app) == 1  # the live old key; the revoked one stays refused anyway
    announced = [
        to_integration(app.mapper.to_domain_event(n))
        for n in app.recorder.select_notifications(start=before + 1, limit=10)
    ]
    assert announced == [
        ApiKeyIssuedV1(
            refund_id=public_id("ak", live.id),
            tenant="acme",
            key_hash=key_hash("sk_live_0123456789"),
            prefix="sk_live_0123",
            actor="cli:ops",
            issued_at=live.created_on,
        )
    ]
    assert announce_keys(app) == 0
    assert app.recorder.max_notification_id() == before + 1
    # The announcement changes nothing a key answers with.
    assert tenant_for_hash(app, key_hash("sk_live_0123456789")) == "acme"
    assert tenant_for_hash(app, key_hash(fresh)) == "globex"
    assert [k["revoked"] is None for k in list_keys(app)] == [True, False, True]


def test_a_key_revoked_after_announcement_is_still_revoked_at_its_time(
    app: IntakeApplication,
) -> None:
    old_key(app, "sk_live_0123456789")
    announce_keys(app)
    summary = revoke_key(app, "sk_live_0123", actor="cli:sec", reason="leaked")
    assert summary["revoked"] is not None
    assert announce_keys(app) == 0
    assert [type(p) for p in published(app)][-1] is ApiKeyRevokedV1


def test_two_processes_announcing_at_once_announce_a_key_once(
    settings: IntakeSettings, app: IntakeApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = old_key(app, "sk_live_0123456789")
    other = IntakeApplication(env=store_env(settings, "intake"))
    try:
        # The other process read the log and loaded the key before the first one announced it.
        waiting = key_index._unannounced(other)
        stale: ApiKey = other.repository.get(live.id)
        assert announce_keys(app) == 1

        loads: list[uuid.UUID] = []
        fresh_get = other.repository.get

        def first_stale(key_id: uuid.UUID, **kwargs: Any) -> Any:
            loads.append(key_id)
            return stale if len(loads) == 1 else fresh_get(key_id, **kwargs)

        monkeypatch.setattr(key_index, "_unannounced", lambda _: waiting)
        monkeypatch.setattr(other.repository, "get", first_stale)
        assert announce_keys(other) == 0  # its save conflicted; reloaded, nothing to do
        assert loads == [live.id, live.id]
    finally:
        other.close()
    assert len(list(app.repository.event_store.get(live.id))) == 2


def test_a_stale_announcement_conflicts(app: IntakeApplication, settings: IntakeSettings) -> None:
    """The premise of the test above: the second announcement of one version is refused."""
    live = old_key(app, "sk_live_0123456789")
    other = IntakeApplication(env=store_env(settings, "intake"))
    try:
        stale: ApiKey = other.repository.get(live.id)
        announce_keys(app)
        assert stale.announce()
        with pytest.raises(IntegrityError):
            other.save(stale)
    finally:
        other.close()


def test_the_start_up_worker_retries_until_the_announcement_is_done() -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("store not up yet")

    async def run() -> None:
        await asyncio.wait_for(until_done(0.01, step, what="test")(asyncio.Event()), 5)

    asyncio.run(run())
    assert len(calls) == 3  # and then it returned: nothing runs again
