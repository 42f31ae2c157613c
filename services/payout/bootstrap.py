"""Payout's composition root: store, gateway, executor, relay and consumer, wired once."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.payout.application import PayoutApplication, to_integration
from services.payout.executor import PayoutExecutor
from services.payout.gateway import SandboxGateway
from services.payout.settings import PayoutSettings
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging


def build(settings: PayoutSettings | None = None) -> Service:
    settings = settings or load_settings(PayoutSettings)
    app = PayoutApplication(env=store_env(settings, "payout"))
    http = FastAPI(title="Refunds — payout", version="1.0.0", description="Payouts.")
    install_problem_handlers(http)
    wired = messaging(
        app, settings, service="payout", to_integration=to_integration, consumes=["review"]
    )
    if settings.executor_enabled:
        wired.workers.append(_executor_worker(app, settings))
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    return Service("payout", settings, http, wired.workers, close=app.close)


def _executor_worker(app: PayoutApplication, settings: PayoutSettings) -> Worker:
    async def run(stop: asyncio.Event) -> None:
        # The HTTP client belongs to the event loop the worker runs in.
        gateway = SandboxGateway(settings.gateway_url, settings.gateway_timeout_s)
        try:
            executor = PayoutExecutor(app, gateway, max_attempts=settings.payout_max_attempts)
            await executor.run(stop)
        finally:
            await gateway.close()

    return run
