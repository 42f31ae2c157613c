"""Notify's composition root: store, API, relay, consumer and e-mail sender, wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.notify.api import build_router
from services.notify.application import NotifyApplication, to_integration
from services.notify.sender import Mailer, Sender, SmtpMailer
from services.notify.settings import NotifySettings
from shared.consumer import Consumer
from shared.health import Health
from shared.http import health_router, install_problem_handlers
from shared.kafka import topic_of
from shared.relay import Relay
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.store import store_env


def build(settings: NotifySettings | None = None, mailer: Mailer | None = None) -> Service:
    settings = settings or load_settings(NotifySettings)
    mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port, settings.envelope_from)
    app = NotifyApplication(env=store_env(settings, "notify"))
    health = Health()
    http = FastAPI(
        title="Refunds — notify",
        version="1.0.0",
        description="Customer messages at every step of a refund, and their delivery log.",
    )
    install_problem_handlers(http)
    http.include_router(build_router(app))
    # Readiness follows the broker parts only: an SMTP outage delays mail (the
    # sender retries) but must not take the delivery log off the load balancer.
    required: list[str] = []
    workers: list[Worker] = []
    if settings.relay_enabled:
        relay = Relay(
            app,
            settings,
            source="notify",
            topic=topic_of(settings, "notify"),
            to_integration=to_integration,
            health=health,
        )
        workers.append(relay.run)
        required.append("relay")
    if settings.consumer_enabled:
        topics = [topic_of(settings, name) for name in ("intake", "review", "payout")]
        consumer = Consumer(app, settings, group="refunds-notify", topics=topics, health=health)
        workers.append(consumer.run)
        required.append("consumer")
    if settings.sender_enabled:
        workers.append(Sender(app, settings, mailer, health=health).run)
    http.include_router(health_router(app.is_reachable, health, required))
    return Service("notify", settings, http, workers, close=app.close)
