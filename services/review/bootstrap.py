"""Review's composition root: store, policy, relay and consumer, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.review.application import ReviewApplication, to_integration
from services.review.domain import AutoApprovalLimit
from services.review.settings import ReviewSettings
from shared.consumer import Consumer
from shared.health import Health
from shared.http import health_router, install_problem_handlers
from shared.kafka import topic_of
from shared.relay import Relay
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.store import store_env


def build(settings: ReviewSettings | None = None) -> Service:
    settings = settings or load_settings(ReviewSettings)
    policy = AutoApprovalLimit(settings.auto_approve_limit)
    app = ReviewApplication(policy, env=store_env(settings, "review"))
    health = Health()
    http = FastAPI(title="Refunds — review", version="1.0.0", description="Policy decisions.")
    install_problem_handlers(http)
    required: list[str] = []
    workers: list[Worker] = []
    if settings.relay_enabled:
        relay = Relay(
            app,
            settings,
            source="review",
            topic=topic_of(settings, "review"),
            to_integration=to_integration,
            health=health,
        )
        workers.append(relay.run)
        required.append("relay")
    if settings.consumer_enabled:
        consumer = Consumer(
            app,
            settings,
            group="refunds-review",
            topics=[topic_of(settings, "intake")],
            health=health,
        )
        workers.append(consumer.run)
        required.append("consumer")
    http.include_router(health_router(app.is_reachable, health, required))
    return Service("review", settings, http, workers, close=app.close)
