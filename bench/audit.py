"""Benchmark of the auditor's tools: ledger sealing, `verify` and read-model `rebuild`.

    .venv/bin/python -m bench.audit [--store sqlite|postgres|both] [--events 100000]
        [--out bench/results]

Per store, a throw-away intake store (a temporary SQLite folder, or a fresh
PostgreSQL schema dropped afterwards) is filled through intake's own commands with
refunds that are requested, approved and paid (six stored events each) until it
holds `--events` events. Then, on that same store:

- baseline: reading the whole log and decoding every event (eventsourcing's
  `select_notifications` + mapper) — no work can replay faster than this;
- seal: hashing every event into the ledger from nothing;
- verify: `refunds audit verify`'s recomputation;
- rebuild: each of intake's read models replayed into a scratch table and compared. Its
  rate counts the whole log (`events`), though a model reads only its own events
  (`read`): what it skips it never reads, as the baseline must.

Baseline and rebuild run in the same process on the same store, one after the other: on
a machine shared with other work compare their percentages, not the rates.

Prints a table and writes a PNG bar chart and JSON. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from services.intake.analytics import RefundFacts
from services.intake.application import IntakeApplication
from services.intake.audit import refund_of
from services.intake.index import RefundIndex
from services.intake.settings import IntakeSettings
from shared.contracts import (
    MoneyModel,
    PaymentRoute,
    PayoutSucceededV1,
    ReviewApprovedV1,
    envelope,
)
from shared.keystore import open_keystore
from shared.ledger import Ledger
from shared.ledger_verify import verify_ledger
from shared.rebuild import rebuild_and_compare
from shared.store import store_env
from tests.support.factories import intake_command

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENTS_PER_REFUND = 6  # requested, order recorded + reserved; approved, settled; paid
GOAL_EVENTS_PER_SECOND = 50_000


@dataclass
class Measure:
    store: str
    step: str
    events: int  # log events covered
    seconds: float
    read: int | None = None  # events actually read, when fewer than the log's

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def fill(app: IntakeApplication, events: int) -> int:
    """Refunds through intake's commands and reactions until the log holds `events`."""
    position = 0
    started = time.perf_counter()
    while int(app.recorder.max_notification_id() or 0) < events:
        refund, _ = app.request_refund(
            tenant="bench", draft=intake_command(), actor="tenant:bench", keyed=None
        )
        refund_id = f"rf_{refund.id.hex}"
        route = {"refund_id": refund_id, "tenant": "bench", "order_id": refund.order_id}
        money = MoneyModel(amount=refund.amount.amount, currency=refund.amount.currency)
        now = datetime.now(UTC)
        for upstream in (
            ReviewApprovedV1(
                **route,
                amount=money,
                payment=PaymentRoute(method="alipay", reference="p"),
                policy_version="bench",
                rule="auto_approve.within_limit",
                decided_by="system:auto_approve.within_limit",
                decided_at=now,
            ),
            PayoutSucceededV1(
                refund_id=refund_id,
                tenant="bench",
                payout_id=f"po_{uuid.uuid4().hex}",
                amount=money,
                method="alipay",
                merchant_refund_no=f"po_{uuid.uuid4().hex[:12]}",
                provider_reference="gw_bench",
                paid_at=now,
                expected_arrival=now,
            ),
        ):
            position += 1
            source = "review" if isinstance(upstream, ReviewApprovedV1) else "payout"
            app.handle(
                envelope(
                    upstream,
                    source=source,
                    event_id=str(uuid.uuid4()),
                    position=position,
                    time=now,
                    causation_id=None,
                )
            )
        if position % 2000 == 0:
            stored = int(app.recorder.max_notification_id() or 0)
            rate = stored / (time.perf_counter() - started)
            print(f"  filled {stored:,} of {events:,} events ({rate:,.0f}/s)", file=sys.stderr)
    return int(app.recorder.max_notification_id() or 0)


def timed(store: str, step: str, work: Callable[[], int]) -> Measure:
    started = time.perf_counter()
    events = work()
    return Measure(store, step, events, time.perf_counter() - started)


def read_all(app: IntakeApplication) -> int:
    read, start = 0, 1
    while batch := app.recorder.select_notifications(start=start, limit=500):
        for notification in batch:
            app.mapper.to_domain_event(notification)
        read += len(batch)
        start = batch[-1].id + 1
    return read


def bench_store(store: str, events: int, database_url: str) -> list[Measure]:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as folder:
        schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
        options: dict[str, Any] = {"data_dir": Path(folder), "env": "dev"}
        if store == "postgres":
            options |= {"database_url": database_url, "database_schema": f"{schema}_intake"}
        settings = IntakeSettings(**options)
        app = IntakeApplication(env=store_env(settings, "intake"))
        app.keystore = open_keystore(settings, "intake")
        try:
            print(f"{store}: filling the store with {events:,} events…", file=sys.stderr)
            stored = fill(app, events)
            ledger = Ledger(app, signer=settings.audit_signer("intake"), correlate=refund_of)
            measures = [timed(store, "read + decode (baseline)", lambda: read_all(app))]
            measures.append(timed(store, "seal", ledger.seal))
            key = settings.audit_signer("intake").public_key
            measures.append(timed(store, "verify", lambda: verify_ledger(ledger, key).events))
            for model in (RefundIndex, RefundFacts):
                result = rebuild_and_compare(app, model)
                assert not result.differences, f"{model.name} differs after rebuild"
                measures.append(
                    Measure(
                        store,
                        f"rebuild {model.name}",
                        result.logged,
                        result.seconds,
                        read=result.events,
                    )
                )
            assert all(m.events >= stored for m in measures if m.step != "seal" or m.events)
            return measures
        finally:
            app.keystore.close()
            app.close()
            if store == "postgres":
                with psycopg.connect(database_url, autocommit=True) as conn:
                    for name in (f"{schema}_intake", f"{schema}_keystore"):
                        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def format_table(measures: list[Measure]) -> str:
    lines = [
        f"{'store':<9} {'step':<28} {'events':>9} {'read':>9} {'seconds':>8} {'events/s':>10} "
        f"{'vs read':>8}"
    ]
    baseline = {m.store: m.rate for m in measures if m.step.startswith("read")}
    for m in measures:
        share = m.rate / baseline[m.store] if baseline.get(m.store) else 0.0
        read = m.events if m.read is None else m.read
        lines.append(
            f"{m.store:<9} {m.step:<28} {m.events:>9,} {read:>9,} {m.seconds:>8.2f} "
            f"{m.rate:>10,.0f} {share:>7.0%}"
        )
    return "\n".join(lines)


def write_plot(measures: list[Measure], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    stores = sorted({m.store for m in measures})
    steps = list(dict.fromkeys(m.step for m in measures))
    width = 0.8 / len(stores)
    for index, store in enumerate(stores):
        rates = [
            next((m.rate for m in measures if m.store == store and m.step == s), 0) for s in steps
        ]
        axes.barh([i + index * width for i in range(len(steps))], rates, height=width, label=store)
    axes.axvline(GOAL_EVENTS_PER_SECOND, color="grey", linestyle="--", label="rebuild goal")
    axes.set_yticks([i + width * (len(stores) - 1) / 2 for i in range(len(steps))], steps)
    axes.set_xlabel("events per second")
    axes.set_title("Audit tools over intake's log")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--events", type=int, default=100_000, help="events to fill (default 100,000)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    measures = [m for store in stores for m in bench_store(store, args.events, args.database_url)]
    print(format_table(measures))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {"machine": platform.platform(), "python": platform.python_version(), "at": stamp}
    (args.out / f"audit-{stamp}.json").write_text(
        json.dumps(
            {"meta": meta, "measures": [asdict(m) | {"rate": m.rate} for m in measures]}, indent=2
        )
    )
    print(f"plot: {write_plot(measures, args.out / f'audit-{stamp}.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
