"""Prometheus metrics every service exposes on `/metrics`: HTTP traffic, its event log, relay
and consumer lag, the background roles this process runs and whether their broker and
channel contacts work, plus whatever gauges a service adds (payout's payouts by status).
What each means and the alerts on them: docs/observability.md.

Each service app has its own `CollectorRegistry`, so several apps built in one process (the
tests do) never share or clash on metrics. Label values are bounded: routes are templates
(`/v1/refunds/{refund_id}`), a request that matches no route is `unmatched`, and methods
outside the standard set are `other`. Gauges about the store are read when scraped, so they
are as fresh as the scrape and cost nothing between scrapes. The figures a fleet compares
across processes (lags, roles, parts) carry a `replica` label, the process's REFUNDS_REPLICA.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations at runtime.

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.application import ServiceApplication
from shared.kafka import topic_of
from shared.relay import position_name
from shared.settings import ServiceSettings
from shared.wiring import Messaging

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Label values → sample value, read at scrape time; `()` is the key of an unlabelled gauge.
Reading = Callable[[], Mapping[tuple[str, ...], float]]


class Metrics:
    """One service's registry and the HTTP metrics its middleware records."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def gauge(
        self, name: str, documentation: str, read: Reading, labels: Sequence[str] = ()
    ) -> None:
        """A gauge whose samples `read()` gives at each scrape."""
        self.registry.register(_Scraped(GaugeMetricFamily, name, documentation, labels, read))

    def counter(
        self, name: str, documentation: str, read: Reading, labels: Sequence[str] = ()
    ) -> None:
        """A counter (exposed as `<name>_total`) whose totals `read()` gives at each scrape:
        for counts kept in the store, which only grow."""
        self.registry.register(_Scraped(CounterMetricFamily, name, documentation, labels, read))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


Family = type[GaugeMetricFamily] | type[CounterMetricFamily]


class _Scraped:
    """A metric computed when scraped; a failing read leaves it out of that scrape only."""

    def __init__(
        self, family: Family, name: str, documentation: str, labels: Sequence[str], read: Reading
    ) -> None:
        self.family, self.name, self.documentation = family, name, documentation
        self.labels, self.read = list(labels), read

    def describe(self) -> Iterable[Metric]:
        # Registering must not read the store: describe by name only.
        return [self.family(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterable[Metric]:
        try:
            samples = self.read()
        except Exception:  # the store may be down; the other metrics still answer
            log.warning("metric %s could not be read", self.name, exc_info=True)
            return []
        family = self.family(self.name, self.documentation, labels=self.labels)
        for values, value in sorted(samples.items()):
            family.add_metric(list(values), value)
        return [family]


class MetricsMiddleware:
    """Counts and times every request by its route template (plain ASGI, so streaming and
    background tasks are untouched). `/metrics` itself is not counted."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaping the app is a 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_template(scope)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's path template (set by the router on the scope), or `unmatched`."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


def metrics_router(metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False)
    def scrape() -> Response:
        """Prometheus text exposition of this service's metrics.

        No authentication: `/metrics` is scraped from inside the network (keep it off the
        public ingress) and holds counts and lags only, never refund or customer data.
        """
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def instrument(
    http: FastAPI,
    app: ServiceApplication,
    settings: ServiceSettings,
    *,
    service: str,
    wired: Messaging,
) -> Metrics:
    """Expose `/metrics` on `http`: its HTTP traffic, the store's log, the relay's and the
    consumer's lag, the roles `wired` runs here and its parts' health. Returns the metrics,
    for the service's own gauges."""
    metrics = Metrics(service)
    http.add_middleware(MetricsMiddleware, metrics=metrics)
    http.include_router(metrics_router(metrics))
    topic = topic_of(settings, service)
    replica = settings.replica
    metrics.gauge(
        "refunds_events_stored",
        "Events in the service's store: the notification log's head position.",
        lambda: {(): log_head(app)},
    )
    metrics.gauge(
        "refunds_relay_lag_events",
        "Events in the log the relay has not yet published (log head minus the relay's saved"
        " position).",
        lambda: {(topic, replica): relay_lag(app, topic)},
        labels=["topic", "replica"],
    )
    consumer = wired.consumer
    if consumer is not None:
        metrics.gauge(
            "refunds_consumer_lag_records",
            "Records behind the broker's high-water mark, per assigned partition.",
            lambda: {
                (tp.topic, str(tp.partition), replica): lag for tp, lag in consumer.lag.items()
            },
            labels=["topic", "partition", "replica"],
        )
    metrics.gauge(
        "refunds_role_active",
        "1 for each background role (relay, consumer, executor …) a loop runs in this process"
        " now (holding the role's lease, for leased roles), 0 for one this service has that"
        " this process does not run.",
        lambda: {
            (service, role, replica): float(running)
            for role, running in wired.roles.active().items()
        },
        labels=["service", "role", "replica"],
    )
    metrics.gauge(
        "refunds_role_epoch",
        "Epoch of each role lease this process holds now (it grows by one at every change of"
        " holder: a step means a failover).",
        lambda: {
            (service, role, replica): float(epoch) for role, epoch in wired.roles.epochs().items()
        },
        labels=["service", "role", "replica"],
    )
    metrics.gauge(
        "refunds_part_healthy",
        "1 while a background part's last step worked, 0 after a failure: the relay's and"
        " the consumer's broker, a sender's mail or SMS provider, the deliverer's store.",
        lambda: {(part, replica): float(ok) for part, ok in sorted(wired.health.parts.items())},
        labels=["part", "replica"],
    )
    return metrics


def log_head(app: ServiceApplication) -> int:
    return int(app.recorder.max_notification_id() or 0)


def relay_lag(app: ServiceApplication, topic: str) -> int:
    return max(log_head(app) - app.positions.load(position_name(topic)), 0)
