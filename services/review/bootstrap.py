"""Review's composition root: store, policy, relay and consumer, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.review.application import ReviewApplication, to_integration
from services.review.domain import AutoApprovalLimit
from services.review.settings import ReviewSettings
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging


def build(settings: ReviewSettings | None = None) -> Service:
    settings = settings or load_settings(ReviewSettings)
    policy = AutoApprovalLimit(settings.auto_approve_limit)
    app = ReviewApplication(policy, env=store_env(settings, "review"))
    http = FastAPI(title="Refunds — review", version="1.0.0", description="Policy decisions.")
    install_problem_handlers(http)
    wired = messaging(
        app, settings, service="review", to_integration=to_integration, consumes=["intake"]
    )
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    return Service("review", settings, http, wired.workers, close=app.close)
