"""Notify's own record of the platform API keys intake issues and revokes (its read model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.notify.application import NotifyApplication
from services.notify.platform_keys import PlatformKey, PlatformKeyIndex
from services.notify.webhooks.deliveries import WebhookDelivery
from shared.auth import ApiKeys, digest
from shared.problems import Problem
from tests.support.notify import (
    cloud,
    key_issued,
    key_revoked,
    new_refund_id,
    notify_app,
    requested,
)

KEY = "sk_live_abcd0123456789abcdef0123456789"
KEY_ID = "ak_3f2a1b0c5d4e4f0ea1c298b37e6a1d2c"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[NotifyApplication]:
    application = notify_app(tmp_path)
    yield application
    application.close()


@pytest.fixture
def index(app: NotifyApplication) -> PlatformKeyIndex:
    return PlatformKeyIndex(app)


def test_an_issued_key_is_accepted_for_its_tenant(
    app: NotifyApplication, index: PlatformKeyIndex
) -> None:
    assert app.handle(cloud(key_issued(KEY_ID, digest(KEY)), 1))
    assert index.tenant_for_hash(digest(KEY)) == "acme"
    keys = ApiKeys({}, lookup=index.tenant_for_hash)
    assert keys.tenant_for(f"Bearer {KEY}") == "acme"


def test_a_revoked_key_is_refused(app: NotifyApplication, index: PlatformKeyIndex) -> None:
    assert app.handle(cloud(key_issued(KEY_ID, digest(KEY)), 1))
    assert index.tenant_for_hash(digest(KEY)) == "acme"
    assert app.handle(cloud(key_revoked(KEY_ID), 2))
    assert index.tenant_for_hash(digest(KEY)) is None
    with pytest.raises(Problem) as refused:
        ApiKeys({}, lookup=index.tenant_for_hash).tenant_for(f"Bearer {KEY}")
    assert refused.value.status == 401


def test_a_revocation_delivered_twice_is_recorded_once(
    app: NotifyApplication, index: PlatformKeyIndex
) -> None:
    assert app.handle(cloud(key_issued(KEY_ID, digest(KEY)), 1))
    revoked = cloud(key_revoked(KEY_ID), 2)
    assert app.handle(revoked)
    assert not app.handle(revoked)  # the same message again: tracked already
    # Published again under a new position (intake's relay starting over): nothing new.
    assert app.handle(cloud(key_revoked(KEY_ID), 7, event_id=revoked.id))
    stored = app.events.get(PlatformKey.create_id(KEY_ID))
    assert [type(e).__name__ for e in stored] == ["Noted", "Issued", "Revoked"]
    assert index.tenant_for_hash(digest(KEY)) is None


def test_a_key_revoked_before_its_issue_arrived_stays_revoked(
    app: NotifyApplication, index: PlatformKeyIndex
) -> None:
    # An older intake stored revocations without the tenant; revocation is final either way.
    assert app.handle(cloud(key_revoked(KEY_ID, tenant=""), 2))
    assert app.handle(cloud(key_issued(KEY_ID, digest(KEY)), 1))
    assert index.tenant_for_hash(digest(KEY)) is None


def test_an_unknown_key_is_refused(app: NotifyApplication, index: PlatformKeyIndex) -> None:
    assert app.handle(cloud(key_issued(KEY_ID, digest(KEY)), 1))
    assert index.tenant_for_hash(digest("sk_live_someone_elses_key_0000000")) is None
    assert index.tenant_for_hash("") is None  # a key known by its revocation only has no hash


def test_a_tenants_other_keys_keep_working(app: NotifyApplication, index: PlatformKeyIndex) -> None:
    other, other_id = KEY + "x", "ak_" + "0" * 32
    assert app.handle(cloud(key_issued(KEY_ID, digest(KEY)), 1))
    assert app.handle(cloud(key_issued(other_id, digest(other)), 2))
    assert app.handle(cloud(key_revoked(KEY_ID), 3))
    assert index.tenant_for_hash(digest(KEY)) is None
    assert index.tenant_for_hash(digest(other)) == "acme"
    rebuilt = PlatformKeyIndex.scratch(app, "rebuilt")
    rebuilt.rebuild()
    assert rebuilt.all_rows() == index.all_rows()


def test_key_events_are_neither_sent_to_webhooks_nor_scheduled_as_messages(
    app: NotifyApplication,
) -> None:
    app.webhooks.allow_private = True
    endpoint, _ = app.webhooks.register_endpoint(
        tenant="acme", url="http://127.0.0.1:9/hook", event_types=["*"], actor="tenant:acme"
    )
    issued, revoked = cloud(key_issued(KEY_ID, digest(KEY)), 1), cloud(key_revoked(KEY_ID), 2)
    assert app.handle(issued) and app.handle(revoked)
    for message in (issued, revoked):
        assert not app.webhooks.exists(WebhookDelivery.create_id(endpoint.id, message.id))
    assert app.messages.notifications_for(KEY_ID) == []
    # A refund's event still is, to the same endpoint.
    refund = cloud(requested(new_refund_id()), 3)
    assert app.handle(refund)
    assert app.webhooks.exists(WebhookDelivery.create_id(endpoint.id, refund.id))
