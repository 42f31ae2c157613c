"""Review's composition root: store, policy, staff API, relay, consumer and the SLA clock,
wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.review import actions_api, cases_api, policies_api, recovery_api
from services.review.application import ReviewApplication
from services.review.policy_document import default_policy, load_policy
from services.review.problems import PROBLEMS
from services.review.publishing import to_integration
from services.review.queue import ReviewQueue
from services.review.settings import ReviewSettings
from services.review.sla import keep_time
from shared.aio import every
from shared.audit_api import auditing
from shared.http import health_router, install_problem_handlers
from shared.keystore import open_keystore
from shared.metrics import instrument
from shared.runtime import Service
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.store import store_env
from shared.wiring import messaging

QUEUE_INTERVAL_SECONDS = 0.5
ROUTERS = (cases_api.router, actions_api.router, recovery_api.router, policies_api.router)


def staff_api(app: ReviewApplication, queue: ReviewQueue, auth: StaffAuth) -> FastAPI:
    """Review's HTTP app: the staff routes, the objects they depend on (services/review/
    deps.py) and the answer to every domain error (services/review/problems.py)."""
    http = FastAPI(
        title="Refunds — review",
        version="1.0.0",
        description="Policy decisions, the manual review queue and separation of duties.",
    )
    install_problem_handlers(http, problems=PROBLEMS)
    http.state.review = app
    http.state.queue = queue
    http.state.staff_auth = auth
    for router in ROUTERS:
        http.include_router(router)
    return http


def build(settings: ReviewSettings | None = None) -> Service:
    settings = settings or load_settings(ReviewSettings)
    policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
    app = ReviewApplication(policy, env=store_env(settings, "review"))
    app.keystore = open_keystore(settings, "review")
    app.record_shipped_policy()
    queue = ReviewQueue(app)
    auth = StaffAuth(settings.staff_secret())
    http = staff_api(app, queue, auth)
    wired = messaging(
        app,
        settings,
        service="review",
        to_integration=to_integration,
        consumes=["intake"],
    )
    audit = auditing(app, settings)
    audit.serve(http)
    wired.workers.extend(audit.workers)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    instrument(http, app, settings, service="review", consumer=wired.consumer)
    workers = [
        *wired.workers,
        keep_time(app, settings.sla_interval_ms / 1000),
        every(QUEUE_INTERVAL_SECONDS, queue.catch_up, what="review queue"),
    ]
    return Service("review", settings, http, workers, close=app.close)
