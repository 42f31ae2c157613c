"""Notify's composition root: store, API, relay, consumer and e-mail sender, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.notify.api import build_router
from services.notify.application import NotifyApplication, to_integration
from services.notify.sender import Mailer, Sender, SmtpMailer
from services.notify.settings import NotifySettings
from shared.http import health_router, install_problem_handlers
from shared.runtime import Service
from shared.settings import load_settings
from shared.store import store_env
from shared.wiring import messaging


def build(settings: NotifySettings | None = None, mailer: Mailer | None = None) -> Service:
    settings = settings or load_settings(NotifySettings)
    mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port, settings.envelope_from)
    app = NotifyApplication(env=store_env(settings, "notify"))
    http = FastAPI(
        title="Refunds — notify",
        version="1.0.0",
        description="Customer messages at every step of a refund, and their delivery log.",
    )
    install_problem_handlers(http)
    http.include_router(build_router(app))
    # Readiness follows the broker parts only: an SMTP outage delays mail (the
    # sender retries) but must not take the delivery log off the load balancer.
    wired = messaging(
        app,
        settings,
        service="notify",
        to_integration=to_integration,
        consumes=["intake", "review", "payout"],
    )
    if settings.sender_enabled:
        wired.workers.append(Sender(app, settings, mailer, health=wired.health).run)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    return Service("notify", settings, http, wired.workers, close=app.close)
