"""Intake's composition root: store, API, refund index, relay and consumer, wired once."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.intake.api import build_router
from services.intake.application import IntakeApplication
from services.intake.index import RefundIndex
from services.intake.publishing import to_integration
from services.intake.settings import IntakeSettings
from services.intake.tenants import tenant_for_hash
from shared.aio import every
from shared.auth import ApiKeys
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging

INDEX_INTERVAL_SECONDS = 0.5


def build(settings: IntakeSettings | None = None) -> Service:
    settings = settings or load_settings(IntakeSettings)
    app = IntakeApplication(env=store_env(settings, "intake"))
    app.idempotency_ttl = timedelta(hours=settings.idempotency_ttl_hours)
    index = RefundIndex(app)
    keys = ApiKeys(settings.hashed_api_keys(), lookup=lambda hashed: tenant_for_hash(app, hashed))
    http = FastAPI(
        title="Refunds — intake",
        version="1.0.0",
        description="The platform-facing refund API: create, follow and act on refund requests.",
    )
    install_problem_handlers(http, max_body_bytes=settings.max_body_bytes)
    http.include_router(build_router(app, keys, index))
    wired = messaging(
        app,
        settings,
        service="intake",
        to_integration=to_integration,
        consumes=["review", "payout"],
    )
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    # Keep the list near the log's end, so list requests rarely have much to catch up.
    workers = [*wired.workers, every(INDEX_INTERVAL_SECONDS, index.catch_up, what="refund index")]
    return Service("intake", settings, http, workers, close=app.close)
