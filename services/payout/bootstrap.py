"""Payout's composition root: store, gateway, executor, relay and consumer, wired once."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.payout.application import PayoutApplication, to_integration
from services.payout.executor import PayoutExecutor
from services.payout.gateway import SandboxGateway
from services.payout.settings import PayoutSettings
from shared.consumer import Consumer
from shared.health import Health
from shared.http import health_router, install_problem_handlers
from shared.kafka import topic_of
from shared.relay import Relay
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.store import store_env


def build(settings: PayoutSettings | None = None) -> Service:
    settings = settings or load_settings(PayoutSettings)
    app = PayoutApplication(env=store_env(settings, "payout"))
    health = Health()
    http = FastAPI(title="Refunds — payout", version="1.0.0", description="Payouts.")
    install_problem_handlers(http)
    required: list[str] = []
    workers: list[Worker] = []
    if settings.relay_enabled:
        relay = Relay(
            app,
            settings,
            source="payout",
            topic=topic_of(settings, "payout"),
            to_integration=to_integration,
            health=health,
        )
        workers.append(relay.run)
        required.append("relay")
    if settings.consumer_enabled:
        consumer = Consumer(
            app,
            settings,
            group="refunds-payout",
            topics=[topic_of(settings, "review")],
            health=health,
        )
        workers.append(consumer.run)
        required.append("consumer")
    if settings.executor_enabled:
        workers.append(_executor_worker(app, settings))
    http.include_router(health_router(app.is_reachable, health, required))
    return Service("payout", settings, http, workers, close=app.close)


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
