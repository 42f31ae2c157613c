"""Intake's composition root: store, API, relay and consumer, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake.api import build_router
from services.intake.application import IntakeApplication, to_integration
from services.intake.settings import IntakeSettings
from shared.auth import ApiKeys
from shared.consumer import Consumer
from shared.health import Health
from shared.http import health_router, install_problem_handlers
from shared.kafka import topic_of
from shared.relay import Relay
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.store import store_env


def build(settings: IntakeSettings | None = None) -> Service:
    settings = settings or load_settings(IntakeSettings)
    app = IntakeApplication(env=store_env(settings, "intake"))
    health = Health()
    http = FastAPI(
        title="Refunds — intake",
        version="1.0.0",
        description="The platform-facing refund API.",
    )
    install_problem_handlers(http)
    http.include_router(build_router(app, ApiKeys(settings.hashed_api_keys())))
    required: list[str] = []
    workers: list[Worker] = []
    if settings.relay_enabled:
        relay = Relay(
            app,
            settings,
            source="intake",
            topic=topic_of(settings, "intake"),
            to_integration=to_integration,
            health=health,
        )
        workers.append(relay.run)
        required.append("relay")
    if settings.consumer_enabled:
        topics = [topic_of(settings, "review"), topic_of(settings, "payout")]
        consumer = Consumer(app, settings, group="refunds-intake", topics=topics, health=health)
        workers.append(consumer.run)
        required.append("consumer")
    http.include_router(health_router(app.is_reachable, health, required))
    return Service("intake", settings, http, workers, close=app.close)
