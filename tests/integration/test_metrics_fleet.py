"""What a fleet watches on /metrics, over real stores: which roles each process runs (and
under which replica name), its parts' health, review's SLA figures and notify's disabled
webhook endpoints. The alerts on them: deploy/prometheus/alerts.yml."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.notify.bootstrap import build as build_notify
from services.notify.settings import NotifySettings
from services.notify.webhooks.commands import ENDPOINT_PREFIX
from services.payout.application import PayoutApplication
from services.payout.bootstrap import build as build_payout
from services.payout.settings import PayoutSettings
from services.review.application import ReviewApplication
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from services.review.sla_metrics import sla_metrics
from shared.ids import public_id
from shared.metrics import Metrics, instrument
from shared.store import store_env
from shared.wiring import Messaging
from tests.integration.test_metrics import labelled, running, scrape, value
from tests.integration.test_review_sla import THURSDAY, Clock, deliver, over_limit_request, tick
from tests.support.factories import eventually, refund_body
from tests.support.intake import serve_intake


def _options(postgres_url: str, schema: str, **more: Any) -> dict[str, Any]:
    quiet = {"relay_enabled": False, "consumer_enabled": False}
    return {"env": "test", "database_url": postgres_url, "database_schema": schema, **quiet, **more}


def roles(samples: dict[Any, float]) -> dict[str, float]:
    found = {}
    for labels in labelled(samples, "refunds_role_active"):
        assert labels["service"] == "payout" and labels["replica"] == "payout-7"
        found[labels["role"]] = value(samples, "refunds_role_active", **labels)
    return found  # type: ignore[return-value]


async def test_roles_show_which_loops_run_in_this_process(
    tmp_path: Path, postgres_url: str, schema_prefix: str
) -> None:
    # The main process of a split deployment: no relay, consumer or executor here.
    settings = PayoutSettings(
        data_dir=tmp_path,
        executor_enabled=False,
        replica="payout-7",
        **_options(postgres_url, f"{schema_prefix}_payout"),
    )
    service = build_payout(settings)
    off = {"relay": 0, "consumer": 0, "executor": 0, "poller": 0}
    loops = {"payout_index": 1, "ledger_sealer": 1, "checkpoint_signer": 1}
    try:
        with TestClient(service.http) as client:
            assert roles(scrape(client)) == {**off, **{role: 0 for role in loops}}
            async with running(service):
                await eventually(
                    lambda: roles(scrape(client)) == {**off, **loops}, 10, "the loops to run"
                )
            assert roles(scrape(client)) == {**off, **{role: 0 for role in loops}}
    finally:
        service.close()


def test_parts_report_whether_their_last_step_worked(tmp_path: Path) -> None:
    settings = PayoutSettings(env="test", data_dir=tmp_path, replica="p-1")
    app = PayoutApplication(env=store_env(settings, "payout"))
    http = FastAPI()
    wired = Messaging()
    instrument(http, app, settings, service="payout", wired=wired)
    try:
        with TestClient(http) as client:
            assert labelled(scrape(client), "refunds_part_healthy") == []
            wired.health.report("relay", True)
            wired.health.report("email sender", False)
            samples = scrape(client)
    finally:
        app.close()
    assert value(samples, "refunds_part_healthy", part="relay", replica="p-1") == 1
    assert value(samples, "refunds_part_healthy", part="email sender", replica="p-1") == 0


def test_review_reports_open_overdue_cases_and_breaches(tmp_path: Path) -> None:
    clock = Clock(THURSDAY)
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "r.db")}
    app = ReviewApplication(default_policy(), env=env, clock=clock)
    metrics = Metrics("review")
    sla_metrics(metrics, ReviewQueue(app), app)

    def samples() -> dict[Any, float]:
        text = metrics.exposition().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    try:
        deliver(app, over_limit_request("rf_late"))
        deliver(app, over_limit_request("rf_on_time"))
        clock.now = THURSDAY + timedelta(days=1, minutes=1)  # both past their deadline
        before = samples()
        open_now = {
            (labels["state"], labels["tier"]): value(before, "refunds_review_cases_open", **labels)
            for labels in labelled(before, "refunds_review_cases_open")
        }
        assert open_now == {("pending", "general"): 2}
        assert value(before, "refunds_review_cases_overdue") == 2  # the clock has not ticked
        assert value(before, "refunds_review_sla_breaches_total") == 0
        assert tick(app, clock, clock.now) == 2  # breach and escalate both
        after = samples()
        assert value(after, "refunds_review_cases_overdue") == 0  # new deadlines, next tier
        assert value(after, "refunds_review_sla_breaches_total") == 2
        assert value(after, "refunds_review_cases_open", state="pending", tier="important") == 2
        assert value(samples(), "refunds_review_sla_breaches_total") == 2  # counted once
    finally:
        app.close()


def test_notify_counts_disabled_webhook_endpoints_by_reason(
    tmp_path: Path, postgres_url: str, schema_prefix: str
) -> None:
    settings = NotifySettings(
        data_dir=tmp_path,
        sender_enabled=False,
        webhook_enabled=False,
        keys_from_intake=False,
        webhook_allow_private=True,
        **_options(postgres_url, f"{schema_prefix}_notify"),
    )
    service = build_notify(settings)
    app = service.http.state.notify
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)

    def register() -> Any:
        endpoint, _ = app.webhooks.register_endpoint(
            tenant="acme",
            url=f"https://127.0.0.1:9/{uuid.uuid4().hex}",
            event_types=["*"],
            actor="tenant:acme",
        )
        return app.webhooks.endpoint(endpoint.id)

    try:
        with TestClient(service.http) as client:
            disabled = labelled(scrape(client), "refunds_webhook_endpoints_disabled")
            assert {labels["reason"] for labels in disabled} == {"gone", "failing", "manual"}
            register()  # stays enabled
            for reason in ("failing", "failing", "gone"):
                endpoint = register()
                endpoint.disable(reason=reason, at=at, actor="system:deliverer")
                app.save(endpoint)
            deleted = register()
            deleted.disable(reason="failing", at=at, actor="system:deliverer")
            app.save(deleted)
            app.webhooks.delete_endpoint(
                tenant="acme",
                endpoint_id=public_id(ENDPOINT_PREFIX, deleted.id),
                actor="tenant:acme",
            )
            samples = scrape(client)
        counted = {
            reason: value(samples, "refunds_webhook_endpoints_disabled", reason=reason)
            for reason in ("gone", "failing", "manual")
        }
        assert counted == {"gone": 1, "failing": 2, "manual": 0}
    finally:
        service.close()


def test_intake_counts_refund_requests_by_status(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with serve_intake(request, tmp_path, "postgres") as intake:
        assert labelled(scrape(intake.client), "refunds_requests") == []
        for _ in range(2):
            intake.create(refund_body())
        samples = scrape(intake.client)
    counted = {
        labels["status"]: value(samples, "refunds_requests", **labels)
        for labels in labelled(samples, "refunds_requests")
    }
    assert counted == {"submitted": 2}
