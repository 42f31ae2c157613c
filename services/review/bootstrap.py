"""Review's composition root: store, policy, relay, consumer and the SLA clock, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.review.application import ReviewApplication
from services.review.policy import default_policy, load_policy
from services.review.publishing import to_integration
from services.review.settings import ReviewSettings
from services.review.sla import keep_time
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging


def build(settings: ReviewSettings | None = None) -> Service:
    settings = settings or load_settings(ReviewSettings)
    policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
    app = ReviewApplication(policy, env=store_env(settings, "review"))
    app.record_shipped_policy()
    http = FastAPI(
        title="Refunds — review",
        version="1.0.0",
        description="Policy decisions, the manual review queue and separation of duties.",
    )
    install_problem_handlers(http)
    wired = messaging(
        app,
        settings,
        service="review",
        to_integration=to_integration,
        consumes=["intake"],
    )
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    workers = [*wired.workers, keep_time(app, settings.sla_interval_ms / 1000)]
    return Service("review", settings, http, workers, close=app.close)
