"""Unit tests of the webhook aggregates: pure, in memory, no framework."""

from __future__ import annotations

import ast
import base64
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.notify.settings import NotifySettings
from services.notify.webhooks.deliverer import pinned
from services.notify.webhooks.deliveries import AttemptResult, DeliveryRefused, WebhookDelivery
from services.notify.webhooks.endpoints import EndpointDirectory, EndpointRefused, WebhookEndpoint
from services.notify.webhooks.retries import next_attempt_delay, retry_schedule
from services.notify.webhooks.signing import new_secret

T0 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
OK = AttemptResult(200, 12, None, "ok")
BOOM = AttemptResult(500, 30, "HTTP 500", "boom")


def endpoint(**overrides: object) -> WebhookEndpoint:
    fields: dict[str, object] = {
        "tenant": "acme",
        "url": "https://hooks.example.com/r",
        "event_types": ["refund.requested.v1"],
        "description": "",
        "alert_email": "ops@example.com",
        "secret": new_secret(),
        "actor": "tenant:acme",
    }
    return WebhookEndpoint(**{**fields, **overrides})  # type: ignore[arg-type]


def delivery(at: datetime = T0) -> WebhookDelivery:
    return WebhookDelivery(
        tenant="acme",
        endpoint_id=uuid.uuid4(),
        event_id="e-1",
        event_type="refund.requested.v1",
        refund_id="rf_1",
        body='{"id":"e-1"}',
        at=at,
    )


def names(aggregate: WebhookEndpoint | WebhookDelivery | EndpointDirectory) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]


# --- endpoints ------------------------------------------------------------------------------


def test_during_the_rotation_overlap_both_secrets_sign_then_only_the_new() -> None:
    made = endpoint()
    old = made.secret
    new = new_secret()
    made.rotate_secret(secret=new, previous_expires_at=T0 + DAY, actor="tenant:acme")

    assert made.live_secrets(T0) == [new, old]
    assert made.live_secrets(T0 + DAY - timedelta(seconds=1)) == [new, old]
    assert made.live_secrets(T0 + DAY) == [new]
    with pytest.raises(EndpointRefused):
        made.rotate_secret(secret=new, previous_expires_at=T0, actor="tenant:acme")


def test_a_rotation_with_no_overlap_retires_the_old_secret_at_once() -> None:
    made = endpoint()
    made.rotate_secret(secret=new_secret(), previous_expires_at=T0, actor="a")
    assert made.live_secrets(T0) == [made.secret]


def test_410_disables_the_endpoint_as_gone() -> None:
    made = endpoint()
    made.collect_events()
    made.record_gone(at=T0)

    assert not made.enabled and made.disabled_reason == "gone" and made.disabled_at == T0
    assert not made.alert_due  # only failing for too long is alerted
    assert names(made) == ["Disabled"]


def test_failing_without_success_for_the_period_disables_and_owes_one_alert() -> None:
    made = endpoint()
    made.collect_events()
    made.record_failure(at=T0, disable_after=DAY)
    made.record_failure(at=T0 + DAY / 2, disable_after=DAY)
    assert made.enabled and made.failing_since == T0

    made.record_failure(at=T0 + DAY, disable_after=DAY)
    assert made.disabled_reason == "failing" and made.alert_due
    made.record_failure(at=T0 + 2 * DAY, disable_after=DAY)  # no more events once disabled
    assert names(made) == ["FailingSince", "Disabled"]

    made.record_alert_sent(at=T0 + DAY)
    made.record_alert_sent(at=T0 + DAY)
    assert not made.alert_due and names(made) == ["AlertSent"]

    made.enable(actor="tenant:acme")
    assert made.enabled and made.failing_since is None and made.alert_sent_at is None


def test_a_success_restarts_the_failure_clock() -> None:
    made = endpoint()
    made.record_failure(at=T0, disable_after=DAY)
    made.record_success(at=T0 + DAY / 2)
    made.record_failure(at=T0 + DAY, disable_after=DAY)
    assert made.enabled and made.failing_since == T0 + DAY


def test_no_alert_is_owed_without_an_address() -> None:
    made = endpoint(alert_email=None)
    made.record_failure(at=T0, disable_after=timedelta(0))
    assert made.disabled_reason == "failing" and not made.alert_due


def test_event_types_must_be_some_and_the_wildcard_alone() -> None:
    with pytest.raises(EndpointRefused, match="at least one"):
        endpoint(event_types=[])
    made = endpoint()
    with pytest.raises(EndpointRefused) as refused:
        made.change(
            url=made.url, event_types=["*", "x"], description="", alert_email=None, actor="a"
        )
    assert refused.value.code == "wildcard_alone"


def test_a_deleted_endpoint_refuses_changes() -> None:
    made = endpoint()
    made.delete(actor="a")
    assert not made.enabled
    with pytest.raises(EndpointRefused):
        made.enable(actor="a")
    made.record_gone(at=T0)  # a late outcome for a deleted endpoint changes nothing
    assert made.disabled_reason is None


# --- the directory --------------------------------------------------------------------------


def test_the_directory_follows_its_endpoints() -> None:
    directory = EndpointDirectory(tenant="acme")
    some, every = endpoint(), endpoint(event_types=["*"])
    directory.sync(some)
    directory.sync(every)
    directory.sync(every)  # already in agreement: no event
    assert names(directory) == ["Opened", "EntrySet", "EntrySet"]
    assert set(directory.subscribers("refund.requested.v1")) == {some.id, every.id}
    assert directory.subscribers("payout.succeeded.v1") == [every.id]

    every.record_gone(at=T0)
    directory.sync(every)
    assert directory.subscribers("payout.succeeded.v1") == []
    some.delete(actor="a")
    directory.sync(some)
    assert directory.subscribers("refund.requested.v1") == [] and directory.entries != {}
    every.enable(actor="a")
    directory.sync(every)
    assert directory.subscribers("refund.requested.v1") == [every.id]


def test_the_directory_keeps_to_its_tenant() -> None:
    with pytest.raises(EndpointRefused):
        EndpointDirectory(tenant="globex").sync(endpoint())
    assert EndpointDirectory.create_id("acme") == EndpointDirectory(tenant="acme").id


# --- deliveries -----------------------------------------------------------------------------


def test_the_delivery_id_derives_from_endpoint_and_event() -> None:
    endpoint_id = uuid.uuid4()
    made = WebhookDelivery(
        tenant="acme",
        endpoint_id=endpoint_id,
        event_id="e-9",
        event_type="t",
        refund_id="rf_1",
        body="{}",
        at=T0,
    )
    assert made.id == WebhookDelivery.create_id(endpoint_id, "e-9")
    assert made.id != WebhookDelivery.create_id(uuid.uuid4(), "e-9")


def test_attempts_are_claimed_then_settled() -> None:
    made = delivery()
    assert made.is_due(T0) and not made.is_due(T0 - timedelta(seconds=1))
    n = made.start_attempt(at=T0)
    assert n == 1 and made.in_flight and not made.is_due(T0)
    with pytest.raises(DeliveryRefused):
        made.start_attempt(at=T0)  # one attempt at a time

    made.fail(n=1, at=T0, result=BOOM, retry_in=5)
    assert made.state == "pending" and made.next_attempt_at == T0 + timedelta(seconds=5)
    assert not made.is_due(T0) and made.is_due(T0 + timedelta(seconds=5))
    made.start_attempt(at=T0 + timedelta(seconds=5))
    with pytest.raises(DeliveryRefused):
        made.succeed(n=1, at=T0, result=OK)  # not the attempt in flight
    made.succeed(n=2, at=T0 + timedelta(seconds=6), result=OK)

    assert made.state == "delivered" and made.next_attempt_at is None
    assert [(a["n"], a["status_code"], a["outcome"]) for a in made.attempts] == [
        (1, 500, "failed"),
        (2, 200, "succeeded"),
    ]
    assert made.attempts[0]["latency_ms"] == 30 and made.attempts[0]["response_excerpt"] == "boom"
    assert names(made) == [
        "Scheduled",
        "AttemptStarted",
        "AttemptFailed",
        "AttemptStarted",
        "AttemptSucceeded",
    ]


def test_giving_up_fails_the_delivery() -> None:
    made = delivery()
    made.start_attempt(at=T0)
    made.fail(n=1, at=T0, result=BOOM, retry_in=None)
    assert made.state == "failed" and not made.is_due(T0 + DAY)
    with pytest.raises(DeliveryRefused):
        made.start_attempt(at=T0 + DAY)


def test_only_2xx_delivers() -> None:
    made = delivery()
    made.start_attempt(at=T0)
    with pytest.raises(DeliveryRefused):
        made.succeed(n=1, at=T0, result=BOOM)


def test_an_attempt_without_outcome_becomes_uncertain_and_is_not_due_again() -> None:
    made = delivery()
    with pytest.raises(DeliveryRefused):
        made.mark_uncertain(at=T0)  # nothing in flight
    made.start_attempt(at=T0)
    made.mark_uncertain(at=T0 + DAY)
    assert made.state == "uncertain" and not made.is_due(T0 + 2 * DAY)
    assert made.attempts[0]["outcome"] == "uncertain"

    made.request_redelivery(at=T0 + 2 * DAY, actor="tenant:acme")
    assert made.state == "pending" and made.is_due(T0 + 2 * DAY)
    assert made.round_attempts == 0  # a fresh round of retries
    assert made.start_attempt(at=T0 + 2 * DAY) == 2


def test_redelivery_waits_for_the_attempt_in_flight() -> None:
    made = delivery()
    made.start_attempt(at=T0)
    with pytest.raises(DeliveryRefused):
        made.request_redelivery(at=T0, actor="a")


def test_a_pending_delivery_can_be_cancelled_and_then_redelivered() -> None:
    made = delivery()
    made.cancel(at=T0, reason="endpoint gone")
    assert made.state == "failed" and made.reason == "endpoint gone"
    with pytest.raises(DeliveryRefused):
        made.cancel(at=T0, reason="again")
    made.request_redelivery(at=T0, actor="a")
    assert made.state == "pending" and made.reason is None


# --- schedule, settings, pinning ------------------------------------------------------------


def test_a_configured_schedule_replaces_the_specs() -> None:
    steps = retry_schedule("0, 0.5,2")
    assert steps == (0.0, 0.5, 2.0)
    rng = random.Random(7)
    assert next_attempt_delay(0, rng, None, steps) == 0
    assert 0.45 <= (next_attempt_delay(1, rng, None, steps) or 0) <= 0.55
    assert next_attempt_delay(3, rng, None, steps) is None
    assert next_attempt_delay(1, rng, 60.0, steps) == 2.0  # Retry-After capped by the schedule
    for bad in ("", "1,x", "-1", "nan"):
        with pytest.raises(ValueError):
            retry_schedule(bad)


def test_private_webhooks_are_refused_in_production() -> None:
    production = {
        "env": "production",
        "jwt_secret": "a-real-secret-of-thirty-two-chars!!",
        "api_keys": "acme:sk_live_0123456789abcdefghijklmn",
        "audit_signing_key": base64.b64encode(bytes(range(32))).decode(),
        "keystore_master_key": base64.b64encode(bytes(range(32, 64))).decode(),
    }
    assert NotifySettings(**production).webhook_allow_private is False  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_PRIVATE"):
        NotifySettings(**production, webhook_allow_private=True)  # type: ignore[arg-type]
    assert NotifySettings(webhook_allow_private=True).webhook_allow_private
    with pytest.raises(ValidationError):
        NotifySettings(webhook_retry_schedule="5,soon")


def test_a_request_is_pinned_to_the_vetted_address_keeping_host_and_tls_name() -> None:
    import ipaddress

    url, headers, extensions = pinned(
        "https://hooks.example.com:8443/r?x=1", ipaddress.ip_address("93.184.216.34")
    )
    assert url == "https://93.184.216.34:8443/r?x=1"
    assert headers == {"host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    url, headers, extensions = pinned("http://h.test/", ipaddress.ip_address("2001:db8::1"))
    assert url == "http://[2001:db8::1]/" and headers == {"host": "h.test"} and extensions == {}


def test_the_webhook_domain_imports_no_framework() -> None:
    source = Path("services/notify/webhooks/endpoints.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {
        "__future__",
        "uuid",
        "dataclasses",
        "datetime",
        "typing",
        "eventsourcing",
        "shared",
    }


def test_the_delivery_domain_imports_no_framework_either() -> None:
    """The deliveries' rules, split from the endpoints', import them and nothing more."""
    source = Path("services/notify/webhooks/deliveries.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {name.split(".")[0] for name in imported} <= {
        "__future__",
        "uuid",
        "dataclasses",
        "datetime",
        "typing",
        "eventsourcing",
        "shared",
        "services",
    }
    assert {name for name in imported if name.startswith("services")} == {
        "services.notify.webhooks.endpoints"
    }
