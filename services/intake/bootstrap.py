"""Intake's composition root: store, API, refund index, relay and consumer, wired once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from services.intake import analytics_api, api, erasure_api, keys_api, staff_api, timeline_api
from services.intake.analytics import RefundFacts
from services.intake.application import IntakeApplication
from services.intake.audit import refund_of
from services.intake.index import RefundIndex
from services.intake.key_index import announce_keys
from services.intake.problems import PROBLEMS
from services.intake.publishing import to_integration
from services.intake.return_analytics import ReturnFacts
from services.intake.settings import IntakeSettings
from services.intake.tenants import tenant_for_hash
from shared.aio import every, sleep_or_stop
from shared.audit_api import auditing
from shared.auth import ApiKeys
from shared.http import health_router, install_problem_handlers
from shared.keystore import open_keystore
from shared.metrics import instrument
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.store import store_env
from shared.wiring import messaging

log = logging.getLogger(__name__)

INDEX_INTERVAL_SECONDS = 0.5
ANNOUNCE_RETRY_SECONDS = 5.0


def build(settings: IntakeSettings | None = None) -> Service:
    settings = settings or load_settings(IntakeSettings)
    app = IntakeApplication(env=store_env(settings, "intake"))
    app.idempotency_ttl = timedelta(hours=settings.idempotency_ttl_hours)
    app.keystore = open_keystore(settings, "intake")
    index = RefundIndex(app)
    facts = RefundFacts(app)
    return_facts = ReturnFacts(app)
    staff_auth = StaffAuth(settings.staff_secret(), settings.oidc())
    http = FastAPI(
        title="Refunds — intake",
        version="1.0.0",
        description="The platform-facing refund API: create, follow and act on refund requests.",
    )
    http.state.intake = app
    http.state.index = index
    http.state.facts = facts
    http.state.return_facts = return_facts
    http.state.settings = settings
    http.state.staff_auth = staff_auth
    http.state.api_keys = ApiKeys(
        settings.hashed_api_keys(), lookup=lambda hashed: tenant_for_hash(app, hashed)
    )
    install_problem_handlers(http, problems=PROBLEMS, max_body_bytes=settings.max_body_bytes)
    for routes in (api, erasure_api, analytics_api, keys_api, staff_api):
        http.include_router(routes.router)
    wired = messaging(
        app,
        settings,
        service="intake",
        to_integration=to_integration,
        consumes=["review", "payout"],
    )
    audit = auditing(app, settings, correlate=refund_of)
    audit.serve(http)
    http.include_router(timeline_api.router)
    wired.add_all(audit.roles)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    metrics = instrument(http, app, settings, service="intake", wired=wired)
    metrics.gauge(
        "refunds_requests",
        "Refund requests by status now (every tenant's): submitted, approved, paid, rejected …",
        lambda: {(status,): n for status, n in index.count_by_status().items()},
        labels=["status"],
    )
    # Keep the list near the log's end, so list requests rarely have much to catch up.
    # Every replica keeps them (leased=False): read models only move rows to newer versions
    # and queries catch them up inline anyway, so a lease would only delay them.
    keep = every(INDEX_INTERVAL_SECONDS, index.catch_up, what="refund index", bell=app.appended)
    wired.add("refund_index", keep, leased=False)
    keep = every(INDEX_INTERVAL_SECONDS, facts.catch_up, what="refund facts", bell=app.appended)
    wired.add("refund_facts", keep, leased=False)
    keep = every(
        INDEX_INTERVAL_SECONDS, return_facts.catch_up, what="return facts", bell=app.appended
    )
    wired.add("return_facts", keep, leased=False)
    # Keys issued before keys were published are announced once (see key_index.py): a loop
    # that ends when done is no role a fleet must keep running.
    announce = partial(announce_keys, app)
    wired.workers.append(until_done(ANNOUNCE_RETRY_SECONDS, announce, what="API key announcement"))
    return Service("intake", settings, http, wired.workers, close=app.close, health=wired.health)


def until_done(retry_seconds: float, step: Callable[[], object], *, what: str) -> Worker:
    """A worker that runs the blocking `step` once, off the event loop, trying again every
    `retry_seconds` until it succeeds (the store may be briefly down at start-up)."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(step)
                return
            except Exception:
                log.exception("%s failed; retrying", what)
            await sleep_or_stop(stop, retry_seconds)

    return run
