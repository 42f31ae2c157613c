"""Intake's composition root: store, API, refund index, relay and consumer, wired once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi import FastAPI

from services.intake.api import build_router
from services.intake.application import IntakeApplication
from services.intake.index import RefundIndex
from services.intake.publishing import to_integration
from services.intake.settings import IntakeSettings
from services.intake.tenants import tenant_for_hash
from shared.aio import sleep_or_stop
from shared.auth import ApiKeys
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging

INDEX_INTERVAL_SECONDS = 0.5
log = logging.getLogger(__name__)


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
    workers = [*wired.workers, keep_indexing(index)]
    return Service("intake", settings, http, workers, close=app.close)


def keep_indexing(index: RefundIndex) -> Worker:
    """Keep the refund list near the log's end, so list requests rarely have much to catch up."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(index.catch_up)
            except Exception:  # the store may be briefly unreachable; list requests catch up
                log.exception("refund index could not catch up; retrying")
            await sleep_or_stop(stop, INDEX_INTERVAL_SECONDS)

    return run
