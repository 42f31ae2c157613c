"""Intake's composition root: store, API, refund index, relay and consumer, wired once."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.intake.analytics import RefundFacts
from services.intake.analytics_api import build_analytics_router
from services.intake.api import build_router
from services.intake.application import IntakeApplication
from services.intake.audit import refund_of
from services.intake.erasure_api import build_erasure_router
from services.intake.index import RefundIndex
from services.intake.publishing import to_integration
from services.intake.settings import IntakeSettings
from services.intake.tenants import tenant_for_hash
from services.intake.timeline_api import build_timeline_router
from shared.aio import every
from shared.audit_api import auditing
from shared.auth import ApiKeys
from shared.http import health_router, install_problem_handlers
from shared.keystore import open_keystore
from shared.metrics import instrument
from shared.runtime import Service
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.store import store_env
from shared.wiring import messaging

INDEX_INTERVAL_SECONDS = 0.5


def build(settings: IntakeSettings | None = None) -> Service:
    settings = settings or load_settings(IntakeSettings)
    app = IntakeApplication(env=store_env(settings, "intake"))
    app.idempotency_ttl = timedelta(hours=settings.idempotency_ttl_hours)
    app.keystore = open_keystore(settings, "intake")
    index = RefundIndex(app)
    keys = ApiKeys(settings.hashed_api_keys(), lookup=lambda hashed: tenant_for_hash(app, hashed))
    http = FastAPI(
        title="Refunds — intake",
        version="1.0.0",
        description="The platform-facing refund API: create, follow and act on refund requests.",
    )
    install_problem_handlers(http, max_body_bytes=settings.max_body_bytes)
    http.include_router(build_router(app, keys, index))
    http.include_router(build_erasure_router(app, index, StaffAuth(settings.staff_secret())))
    facts = RefundFacts(app)
    http.include_router(build_analytics_router(facts, StaffAuth(settings.staff_secret())))
    wired = messaging(
        app,
        settings,
        service="intake",
        to_integration=to_integration,
        consumes=["review", "payout"],
    )
    audit = auditing(app, settings, StaffAuth(settings.staff_secret()), correlate=refund_of)
    http.include_router(audit.router)
    http.include_router(build_timeline_router(app, keys, settings.peers(), settings.staff_secret()))
    wired.workers.extend(audit.workers)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    instrument(http, app, settings, service="intake", consumer=wired.consumer)
    # Keep the list near the log's end, so list requests rarely have much to catch up.
    workers = [
        *wired.workers,
        every(INDEX_INTERVAL_SECONDS, index.catch_up, what="refund index"),
        every(INDEX_INTERVAL_SECONDS, facts.catch_up, what="refund facts"),
    ]
    return Service("intake", settings, http, workers, close=app.close)
