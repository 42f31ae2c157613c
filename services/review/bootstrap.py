"""Review's composition root: store, policy, staff API, relay, consumer and the SLA clock,
wired once."""

from __future__ import annotations

from fastapi import FastAPI

from services.review import actions_api, cases_api, policies_api, recovery_api
from services.review.application import ReviewApplication
from services.review.claim_listing import ClaimLedger
from services.review.policy_document import default_policy, load_policy
from services.review.problems import PROBLEMS
from services.review.publishing import to_integration
from services.review.queue import ReviewQueue
from services.review.returns import api as returns_api
from services.review.returns.carriers import Kuaidi100
from services.review.returns.listing import WarehouseList
from services.review.returns.pushes import CarrierPushes
from services.review.returns.workers import carrier_workers, keep_returns_on_time
from services.review.settings import ReviewSettings
from services.review.sla import keep_time
from services.review.sla_metrics import sla_metrics
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
ROUTERS = (
    cases_api.router,
    actions_api.router,
    recovery_api.router,
    recovery_api.ledger_router,
    policies_api.router,
    returns_api.router,
    returns_api.carrier_router,
)


def staff_api(
    app: ReviewApplication,
    queue: ReviewQueue,
    auth: StaffAuth,
    pushes: CarrierPushes | None = None,
) -> FastAPI:
    """Review's HTTP app: the staff routes, the carrier's push route, the objects they
    depend on (services/review/deps.py) and the answer to every domain error
    (services/review/problems.py). Without `pushes`, no carrier takes pushes."""
    http = FastAPI(
        title="Refunds — review",
        version="1.0.0",
        description="Policy decisions, the manual review queue and separation of duties.",
    )
    install_problem_handlers(http, problems=PROBLEMS)
    http.state.review = app
    http.state.queue = queue
    http.state.staff_auth = auth
    http.state.returns = WarehouseList(app)
    http.state.claims = ClaimLedger(app)
    http.state.carrier_pushes = pushes or CarrierPushes(None)
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
    auth = StaffAuth(settings.staff_secret(), settings.oidc())
    carrier = _carrier(settings)
    pushes = CarrierPushes(carrier)
    http = staff_api(app, queue, auth, pushes)
    wired = messaging(
        app,
        settings,
        service="review",
        to_integration=to_integration,
        consumes=["intake"],
    )
    audit = auditing(app, settings)
    audit.serve(http)
    wired.add_all(audit.roles)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    metrics = instrument(http, app, settings, service="review", wired=wired)
    metrics.registry.register(pushes.counter)
    sla_metrics(metrics, queue, app)
    wired.add("sla_clock", keep_time(app, settings.sla_interval_ms / 1000))
    wired.add("return_deadlines", keep_returns_on_time(app, settings.sla_interval_ms / 1000))
    wired.add_all(
        carrier_workers(
            app,
            carrier,
            callback_url=settings.carrier_callback_url,
            poll_interval=settings.carrier_poll_interval_s,
        )
    )
    # A read model: every replica keeps it (no lease), see intake's bootstrap.
    keep = every(QUEUE_INTERVAL_SECONDS, queue.catch_up, what="review queue", bell=app.appended)
    wired.add("review_queue", keep, leased=False)
    return Service("review", settings, http, wired.workers, close=app.close, health=wired.health)


def _carrier(settings: ReviewSettings) -> Kuaidi100 | None:
    """The carrier adapter, or None when none is configured (production before a carrier is
    signed up): then nothing subscribes, polls or takes pushes (returns/workers.py)."""
    key, customer, salt = settings.carrier_key, settings.carrier_customer, settings.carrier_salt
    if not (key and customer and salt):
        return None
    return Kuaidi100(
        settings.carrier_url,
        key=key,
        customer=customer,
        salt=salt,
        timeout=settings.carrier_timeout_s,
    )
