"""Payout's composition root: store, routes, executor, poller, callbacks, staff API, relay
and consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.payout import callbacks_api, payouts_api, providers_api, reconciliation_api
from services.payout.adapters import Routes
from services.payout.application import PayoutApplication
from services.payout.executor import PayoutExecutor, RetryPolicy
from services.payout.index import PayoutIndex, ReconciliationIndex
from services.payout.poller import StatusPoller
from services.payout.problems import PROBLEMS
from services.payout.providers.gateway import CallbackKey, GatewayRoute, SandboxGateway
from services.payout.providers.registry import PROVIDERS
from services.payout.providers.store_balance import StoreBalanceRoute
from services.payout.publishing import to_integration
from services.payout.settings import PayoutSettings
from services.payout.tenant_providers import TenantProviders
from shared.aio import every
from shared.audit_api import auditing
from shared.http import health_router, install_problem_handlers
from shared.keystore import Keystore, open_keystore
from shared.metrics import instrument
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.store import store_env
from shared.wiring import messaging

INDEX_INTERVAL_SECONDS = 0.5


def http_api(
    app: PayoutApplication, settings: PayoutSettings, keystore: Keystore | None = None
) -> FastAPI:
    """Payout's HTTP surface over `app`: the providers' callbacks, the staff API for
    payouts, reconciliation and provider accounts, with payout's problems installed once."""
    http = FastAPI(title="Refunds — payout", version="1.0.0", description="Payouts.")
    install_problem_handlers(http, problems=PROBLEMS)
    http.state.payout = app
    http.state.payout_index = PayoutIndex(app)
    http.state.reconciliation_index = ReconciliationIndex(app)
    http.state.staff_auth = StaffAuth(settings.staff_secret(), settings.oidc())
    http.state.callback_key = CallbackKey(
        settings.gateway_callback_secret, settings.callback_tolerance_s
    )
    keystore = keystore or open_keystore(settings, "payout")
    http.state.tenant_providers = TenantProviders(
        app, keystore, PROVIDERS, settings.base_url, timeout_s=settings.provider_timeout_s
    )
    for api in (callbacks_api, payouts_api, reconciliation_api, providers_api):
        http.include_router(api.router)
    return http


def build(settings: PayoutSettings | None = None) -> Service:
    settings = settings or load_settings(PayoutSettings)
    app = PayoutApplication(env=store_env(settings, "payout"))
    keystore = open_keystore(settings, "payout")
    http = http_api(app, settings, keystore)
    index: PayoutIndex = http.state.payout_index
    wired = messaging(
        app,
        settings,
        service="payout",
        to_integration=to_integration,
        consumes=["review", "intake"],  # approvals and compensation; withdrawals
    )
    if settings.executor_enabled:
        wired.add("executor", _executor_worker(app, settings, keystore))
        wired.add("poller", _poller_worker(app, settings, keystore))
    else:
        wired.roles.declare("executor")
        wired.roles.declare("poller")
    # A read model: every replica keeps it (no lease), see intake's bootstrap.
    keep = every(INDEX_INTERVAL_SECONDS, index.catch_up, what="payout index", bell=app.appended)
    wired.add("payout_index", keep, leased=False)
    metrics = instrument(http, app, settings, service="payout", wired=wired)
    metrics.gauge(
        "refunds_payouts",
        "Payouts by status now (pending, processing, paid, failed, cancelled).",
        lambda: {(status,): n for status, n in index.count_by_status().items()},
        labels=["status"],
    )
    metrics.registry.register(http.state.tenant_providers.callbacks_seen)
    audit = auditing(app, settings)
    audit.serve(http)
    wired.add_all(audit.roles)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))

    def close() -> None:
        app.close()
        keystore.close()

    return Service("payout", settings, http, wired.workers, close=close, health=wired.health)


def retry_policy(settings: PayoutSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.payout_max_attempts,
        window_s=settings.payout_retry_window_s,
        base_delay_s=settings.payout_retry_base_s,
        max_delay_s=settings.payout_retry_max_s,
    )


@asynccontextmanager
async def routes(
    app: PayoutApplication, settings: PayoutSettings, keystore: Keystore
) -> AsyncIterator[Routes]:
    """The routes, with HTTP clients that belong to the running event loop."""
    gateway = SandboxGateway(settings.gateway_url, settings.gateway_timeout_s)
    tenants = TenantProviders(
        app, keystore, PROVIDERS, settings.base_url, timeout_s=settings.provider_timeout_s
    )
    try:
        yield Routes(
            GatewayRoute(gateway, settings.notify_url), StoreBalanceRoute(app), tenants=tenants
        )
    finally:
        await gateway.close()
        await tenants.close()


def _executor_worker(
    app: PayoutApplication, settings: PayoutSettings, keystore: Keystore
) -> Worker:
    async def run(stop: asyncio.Event) -> None:
        async with routes(app, settings, keystore) as chosen:
            poll = settings.poll_interval_ms / 1000
            executor = PayoutExecutor(
                app, chosen, policy=retry_policy(settings), poll_interval=poll
            )
            await executor.run(stop)

    return run


def _poller_worker(app: PayoutApplication, settings: PayoutSettings, keystore: Keystore) -> Worker:
    async def run(stop: asyncio.Event) -> None:
        async with routes(app, settings, keystore) as chosen:
            poller = StatusPoller(
                app,
                chosen,
                after_s=settings.payout_poll_after_s,
                interval_s=settings.payout_poll_interval_s,
            )
            await poller.run(stop)

    return run
