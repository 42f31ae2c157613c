"""What the end-to-end benchmark reads back from the stack: the four ledgers (when each refund
was requested, decided, paid and told; events per refund), the history size of the stores,
who consumes which topic, and the arithmetic over those counts (pure)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from bench.loadgen import Outcome, percentile
from refunds.devstack import SERVICES, Ports
from refunds.stores import Stores, open_service
from shared.auth import DEV_API_KEY
from shared.ledger import BATCH, Ledger, data_of
from shared.readmodel import values

MOMENTS = ("request", "decision", "paid", "told")
LAG_GAUGE = "refunds_consumer_lag_records"


# -- arithmetic (pure) -----------------------------------------------------------------------------


def share(per_refund: float | None, paid_rate: float, baseline_rate: float | None) -> float | None:
    """What fraction of a baseline's rate the stack's work uses: per refund * refunds/s ÷ rate.

    1.0 means the stack moves as many events (messages) per second as the bare library does
    on its own; None when either side is unknown.
    """
    if per_refund is None or not baseline_rate or baseline_rate <= 0:
        return None
    return per_refund * paid_rate / baseline_rate


def mean_per_refund(counts: Mapping[str, float], refunds: set[str]) -> float | None:
    """The mean of `counts` over `refunds` (a refund without a count counts 0); None if none."""
    if not refunds:
        return None
    return sum(counts.get(refund, 0) for refund in refunds) / len(refunds)


def counted_refunds(times: Mapping[str, Mapping[str, datetime]], paid: set[str]) -> set[str]:
    """The refunds to count events and messages of: those through all four moments.

    A paid refund whose customer is not yet told still has events and messages to come;
    only when none is complete are the paid ones counted (a lower bound then).
    """
    complete = {refund for refund in paid if all(m in times.get(refund, {}) for m in MOMENTS)}
    return complete or set(paid)


def deliveries(by_topic: Mapping[str, int], consumers: Mapping[str, list[str]]) -> int:
    """Records consumed: each topic's records times the consumer groups that read it."""
    return sum(count * len(consumers.get(topic, [])) for topic, count in by_topic.items())


def consumed_topics(metrics_text: str) -> set[str]:
    """The topics a service's consumer is assigned, from its /metrics lag gauge."""
    from prometheus_client.parser import text_string_to_metric_families

    found: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        if family.name == LAG_GAUGE:
            found.update(sample.labels["topic"] for sample in family.samples)
    return found


def consumer_groups(ports: Ports) -> dict[str, list[str]]:
    """Which services consume each topic, as their /metrics say (each is one consumer group)."""
    found: dict[str, list[str]] = defaultdict(list)
    for service in SERVICES:
        text = httpx.get(f"http://127.0.0.1:{ports.of(service)}/metrics", timeout=10).text
        for topic in sorted(consumed_topics(text)):
            found[topic].append(service)
    return dict(found)


# -- stages from the ledgers ----------------------------------------------------------------------


def ledger_facts(
    stores: Stores, refund_ids: set[str], after: Mapping[str, int]
) -> tuple[dict[str, dict[str, datetime]], dict[str, int]]:
    """For each refund: when it was requested, decided, paid and the customer told; and how
    many events the four ledgers hold for it. Only entries past each service's position
    `after` (its log's end when the level began) are read: the history before is not."""
    wanted = {
        "intake": {"RefundRequest.Requested": "request"},
        "review": {"ReviewCase.Approved": "decision"},
        "payout": {"Payout.Succeeded": "paid"},
        "notify": {"Correspondence.MessageSent": "told"},
    }
    times: dict[str, dict[str, datetime]] = defaultdict(dict)
    events: dict[str, int] = defaultdict(int)
    for service, types in wanted.items():
        with open_service(stores, service) as app:
            ledger = Ledger(app)
            ledger.seal()
            entries = [
                e for e in since(ledger, after.get(service, 0)) if e.correlation in refund_ids
            ]
            for entry in entries:
                events[str(entry.correlation)] += 1
            entries = [e for e in entries if e.type in types]
            stored = ledger.stored([e.position for e in entries]) if service == "notify" else {}
            for entry in entries:
                if service == "notify":
                    data = data_of(stored[entry.position])
                    if (data.get("step"), data.get("channel")) != ("paid", "email"):
                        continue
                moment = types[entry.type]
                at = datetime.fromisoformat(entry.at)
                times[str(entry.correlation)].setdefault(moment, at)
    return times, events


def since(ledger: Ledger, position: int) -> Iterator[Any]:
    """The sealed entries after `position`, in batches."""
    while batch := ledger.entries(after=position, limit=BATCH):
        yield from batch
        position = batch[-1].position


def history_size(stores: Stores) -> tuple[int, dict[str, int]]:
    """(intake's refunds stored, events stored per service: each log's last position)."""
    from services.intake.index import RefundIndex

    events: dict[str, int] = {}
    refunds = 0
    for service in SERVICES:
        with open_service(stores, service) as app:
            events[service] = int(app.recorder.max_notification_id() or 0)
            if service == "intake":
                # Counted as the index stands, not caught up from here: intake itself may be
                # writing it (it has, before the stack was found quiet).
                table = RefundIndex(app).table
                with app.recorder.datastore.transaction(commit=False) as cursor:
                    cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - its own name
                    refunds = int(values(cursor.fetchone())[0])
    return refunds, events


def stage_percentiles(times: dict[str, dict[str, datetime]]) -> dict[str, dict[str, float | None]]:
    spans = {
        "request→decision": ("request", "decision"),
        "decision→paid": ("decision", "paid"),
        "paid→told": ("paid", "told"),
        "request→told": ("request", "told"),
    }
    result = {}
    for name, (start, end) in spans.items():
        values = [
            (moments[end] - moments[start]).total_seconds() * 1000
            for moments in times.values()
            if start in moments and end in moments
        ]
        result[name] = {f"p{p}": percentile(values, p) for p in (50, 95, 99)}
    return result


def confirm_paid(ports: Ports, outcomes: list[Outcome], timeout: float = 30.0) -> None:
    """A refund counts as paid once intake shows it paid too: those it does not show so
    within `timeout` get the status it shows instead."""
    deadline = time.monotonic() + timeout
    with httpx.Client(
        base_url=f"http://127.0.0.1:{ports.intake}",
        headers={"Authorization": f"Bearer {DEV_API_KEY}"},
        timeout=10,
    ) as client:
        for outcome in outcomes:
            if outcome.final != "paid":
                continue
            while True:
                status = client.get(f"/v1/refunds/{outcome.refund_id}").json().get("status")
                if status == "paid" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if status != "paid":
                outcome.final = str(status)
