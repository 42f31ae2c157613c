"""Intake's composition root: store, API, relay and consumer, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake.api import build_router
from services.intake.application import IntakeApplication, to_integration
from services.intake.settings import IntakeSettings
from shared.auth import ApiKeys
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging


def build(settings: IntakeSettings | None = None) -> Service:
    settings = settings or load_settings(IntakeSettings)
    app = IntakeApplication(env=store_env(settings, "intake"))
    http = FastAPI(
        title="Refunds — intake",
        version="1.0.0",
        description="The platform-facing refund API.",
    )
    install_problem_handlers(http)
    http.include_router(build_router(app, ApiKeys(settings.hashed_api_keys())))
    wired = messaging(
        app,
        settings,
        service="intake",
        to_integration=to_integration,
        consumes=["review", "payout"],
    )
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    return Service("intake", settings, http, wired.workers, close=app.close)
