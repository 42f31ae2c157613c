"""End-to-end benchmark: refunds per second from `POST` to `paid`, what each process spends
on one, net of idle, at one or more history sizes.

    .venv/bin/python -m bench.e2e [--store sqlite|postgres|both] [--rates 10,20,40,80]
        [--seconds 20] [--gateway-delay-ms 0,200] [--method bank_transfer]
        [--history 1000,100000] [--baseline-seconds 5] [--kafka-messages 20000]
        [--out bench/results]

Per store, starts the README's stack (`refunds dev` on free ports: SQLite files in a
throw-away folder, or PostgreSQL with fresh schemas `bench_e2e_<id>_*` that are dropped
afterwards, also on Ctrl-C or SIGTERM), warms it up with a few refunds, then measures on
that store and that broker, in the same run, the bare eventsourcing save rate
(bench/intake_create.py's baseline) and the bare aiokafka produce→consume rate
(bench/kafka_baseline.py).

For each history point (`--history N`: the stack is stopped, the stores filled to N refunds
by bench/history.py's `seed_history`, the stack started again on them) it waits until the
stack is ready and quiet, measures each process's idle CPU rate, then offers auto-approved
refunds at each rate (bench/loadgen.py, open loop, each followed to `paid`). Per level it
reports the rate of refunds reaching `paid`, POST→paid p50/p95/p99, each stage's p50/p99 from
the four ledgers, CPU-ms per refund per process net of idle (bench/e2e_cpu.py), the history
size, the events stored and Kafka messages per refund, and what share of each baseline's
rate the refunds per second use. Tables, markdown, JSON and a plot: bench/e2e_report.py.

A benchmark, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.e2e_args import numbers, setting, sizes
from bench.e2e_cpu import ROLES, Sample, idle_rates, net_per_refund, wait_settled, with_totals
from bench.e2e_facts import (
    confirm_paid,
    consumer_groups,
    counted_refunds,
    deliveries,
    history_size,
    ledger_facts,
    mean_per_refund,
    share,
    stage_percentiles,
)
from bench.e2e_report import (
    STAGES,
    Level,
    Point,
    StoreRun,
    format_cost_rows,
    format_point,
    format_rows,
    format_table,
    markdown,
    max_paid_rate,
    write_json,
    write_markdown,
    write_plot,
)
from bench.e2e_stack import as_if_durable, broker, free_base, stack, throwaway_schemas
from bench.intake_create import bare_save_rate, say
from bench.intake_create_stack import DEFAULT_DATABASE_URL, StoreTarget
from bench.kafka_baseline import TopicReader, produce_consume_rate
from bench.loadgen import Outcome, Settings, percentile, run
from refunds.devstack import Ports
from refunds.stores import Stores
from shared.auth import DEV_API_KEY
from shared.consumer import Consumer
from shared.kafka import TOPICS

__all__ = ["STAGES", "Level", "Point", "StoreRun", "format_table", "write_json", "write_plot"]

STORES = ("sqlite", "postgres")
METHODS = ("alipay", "card", "wechat_pay", "bank_transfer")


# -- one store, one level --------------------------------------------------------------------------


@dataclass
class Bench:
    """A running stack and what the levels need to measure it."""

    store: str
    process: subprocess.Popen[str]
    broker: subprocess.Popen[bytes]  # outside the stack, so that it outlives restarts
    ports: Ports
    stores: Stores
    reader: TopicReader
    db_command: str | None
    method: str
    result: StoreRun
    point: Point | None = None

    def sample(self) -> Sample:
        return Sample.take(self.process.pid, self.db_command, also=[self.broker.pid])


def offer(
    ports: Ports, rate: float, seconds: float, gateway_delay_ms: int, method: str
) -> list[Outcome]:
    httpx.post(
        f"http://127.0.0.1:{ports.gateway}/control",
        json={"reset": True, "delay_ms": gateway_delay_ms},
        timeout=10,
    ).raise_for_status()
    settings = Settings(
        rate=rate,
        duration=seconds,
        concurrency=256,
        follow=True,
        poll_interval=0.1,
        follow_timeout=120,
        timeout=30,
    )
    mix = {"auto": 100, "reject": 0, "manual": 0}
    # Followed on the broker (bench/topic_follow.py): polling intake would add its GETs to
    # the cost measured; intake's own view is checked after the measured window.
    intake, kafka = f"http://127.0.0.1:{ports.intake}", f"127.0.0.1:{ports.broker}"
    outcomes, _, _, _ = asyncio.run(run(intake, DEV_API_KEY, settings, mix, method, kafka))
    return outcomes


def run_level(bench: Bench, rate: float, seconds: float, gateway_delay_ms: int) -> Level:
    point = bench.point
    assert point is not None, "the idle rate is measured before the levels"
    stored, positions = history_size(bench.stores)
    before = bench.sample()
    outcomes = offer(bench.ports, rate, seconds, gateway_delay_ms, bench.method)
    after = bench.sample()
    confirm_paid(bench.ports, outcomes)
    paid = [o for o in outcomes if o.final == "paid" and o.final_ms is not None]
    idle = {role: point.idle_ms_per_s.get(role, 0.0) for role in ROLES}
    net = net_per_refund(after.ms_since(before), idle, after.at - before.at, len(paid))
    by_role = with_totals(net) if net is not None else {}
    # Each outcome's times count from its own scheduled start: put them on one clock.
    scheduled = [o.answered_at - (o.post_ms or 0) / 1000 for o in outcomes]
    paid_at = [o.answered_at - (o.post_ms or 0) / 1000 + (o.final_ms or 0) / 1000 for o in paid]
    span = max(paid_at) - min(scheduled) if paid else 0.0
    paid_rate = len(paid) / span if span else 0.0
    refund_ids = {o.refund_id for o in paid if o.refund_id}
    times, events = ledger_facts(bench.stores, refund_ids, positions)
    asyncio.run(bench.reader.read())
    counted = counted_refunds(times, refund_ids)
    published = {r: sum(bench.reader.by_key.get(r, {}).values()) for r in counted}
    consumed = {
        r: deliveries(bench.reader.by_key.get(r, {}), bench.result.consumers) for r in counted
    }
    events_per_refund = mean_per_refund(events, counted)
    deliveries_per_refund = mean_per_refund(consumed, counted)
    save, kafka = bench.result.save, bench.result.kafka
    return Level(
        store=bench.store,
        gateway_delay_ms=gateway_delay_ms,
        offered_rate=rate,
        refunds=len(outcomes),
        paid=len(paid),
        paid_rate=paid_rate,
        post_to_paid_ms={
            f"p{p}": percentile([o.final_ms or 0 for o in paid], p) for p in (50, 95, 99)
        },
        stages_ms=stage_percentiles(times),
        cpu_ms_per_refund=by_role.get("stack", 0.0),
        db_cpu_ms_per_refund=by_role.get("db") if by_role and bench.db_command else None,
        counted=len(counted),
        events_per_refund=events_per_refund,
        messages_per_refund=mean_per_refund(published, counted),
        deliveries_per_refund=deliveries_per_refund,
        save_share=share(events_per_refund, paid_rate, save.saves_per_second if save else None),
        kafka_share=share(
            deliveries_per_refund, paid_rate, kafka.messages_per_second if kafka else None
        ),
        history=point.history,
        refunds_stored=stored,
        events_stored=positions,
        wall_seconds=after.at - before.at,
        cpu_ms_by_role=by_role,
    )


def fill_history(stores: Stores, wanted: int | None, stored: int) -> tuple[int, float]:
    """Seed the (stopped) stack's stores up to `wanted` refunds: (refunds added, seconds)."""
    if wanted is None or wanted <= stored:
        return 0, 0.0
    # bench/history.py, by name: the seeder is its own module (and can be swapped in tests).
    try:
        history: Any = importlib.import_module("bench.history")
    except ModuleNotFoundError as error:
        raise RuntimeError("--history needs bench/history.py (its seed_history)") from error
    missing = wanted - stored
    done = {"refunds": 0, "shown": time.monotonic()}

    def progress(batch: int) -> None:
        # The seeder tells each batch's size as it is stored; shown every 5 s at most.
        done["refunds"] += batch
        if time.monotonic() - done["shown"] >= 5 or done["refunds"] >= missing:
            done["shown"] = time.monotonic()
            say(f"  seeded {done['refunds']:,} of {missing:,}")

    started = time.monotonic()
    history.seed_history(stores, refunds=missing, progress=progress)
    return missing, time.monotonic() - started


def settle_and_idle(bench: Bench, args: argparse.Namespace, point: Point) -> None:
    """Wait until our four services are quiet (bounded) and their consumers dormant, then
    measure every role's idle rate (a lower idle rate makes the net cost per refund higher,
    not lower)."""
    say(f"{bench.store}: waiting for the stack to settle …")
    settled = wait_settled(
        bench.sample, threshold_ms_per_s=args.settle_threshold, timeout=args.settle_timeout
    )
    point.settle_seconds, point.settled = settled.seconds, settled.settled
    if not settled.settled:
        say(
            f"{bench.store}: not quiet after {settled.seconds:.0f} s (our four at "
            f"{settled.last_ms_per_s:.0f} CPU-ms/s); measuring anyway"
        )
    # At rest: the consumers' fetches wait their longest once no record came for a while.
    say(f"{bench.store}: {Consumer.dormant_after:g} s for the consumers to go dormant …")
    time.sleep(Consumer.dormant_after)
    say(f"{bench.store}: idle for {args.idle_seconds:g} s …")
    before = bench.sample()
    time.sleep(args.idle_seconds)
    point.idle_ms_per_s = with_totals(idle_rates(before, bench.sample()))
    # A stack at rest answers its first refund late on tansu (each hop's fetch is held up to
    # its longest wait): shown here; the levels measure the stack under load, woken.
    say(f"{bench.store}: waking the stack at rest (2 s at 5 refunds/s) …")
    woken = [o.final_ms for o in offer(bench.ports, 5, 2, 0, bench.method)]
    paid = [ms for ms in woken if ms is not None]
    point.after_rest_ms = (woken[0] if woken else None, max(paid) if paid else None)
    point.refunds_stored, point.events_stored = history_size(bench.stores)


def bench_store(name: str, args: argparse.Namespace, folder: Path) -> StoreRun:
    """For each history point: fill the stores, (re)start the stack on them, and on the first
    start measure both baselines; then settle, measure idle, and run every level."""
    database_url = args.database_url if name == "postgres" else None
    # A store filled beforehand (`python -m bench.history`) is used as it is, and kept.
    kept = args.sqlite_dir if database_url is None else args.schema_prefix
    throwaway = f"bench_e2e_{uuid.uuid4().hex[:8]}"  # dropped at the end: prefix of every schema
    prefix = (args.schema_prefix or throwaway) if database_url else None
    data_dir = args.sqlite_dir if database_url is None and kept else folder / name
    data_dir.mkdir(exist_ok=bool(kept))
    if database_url is None:
        baseline_dir = folder / f"{name}-baseline"
        baseline_dir.mkdir()
        target = StoreTarget.sqlite(baseline_dir)
    else:
        target = StoreTarget(
            "postgres", {}, database_url=database_url, baseline_schema=f"{throwaway}_baseline"
        )
    stores = Stores(data_dir, database_url, prefix)
    result = StoreRun(name, method=args.method)
    where = f"PostgreSQL schemas {prefix}_*" if prefix else f"SQLite in {data_dir}"
    base = free_base()
    ports = Ports.from_base(base)
    with throwaway_schemas(database_url, throwaway), broker(data_dir, base) as kafka:
        if kept:
            as_if_durable(base)
        for n, history in enumerate(args.history or [None]):
            # Before the first start the stores do not exist yet, unless they were kept.
            stored = history_size(stores)[0] if n or kept else 0
            seeded, seed_seconds = 0, 0.0
            if history is not None and history > stored:
                say(f"{name}: seeding {history - stored:,} refunds of history …")
                seeded, seed_seconds = fill_history(stores, history, stored)
                say(f"{name}: seeded {seeded:,} in {seed_seconds:.0f} s")
            point = Point(history, 0, {}, {}, seeded=seeded, seed_seconds=seed_seconds)
            say(f"{name}: starting refunds dev ({where}) …")
            with stack(data_dir, base, database_url, prefix, args.set) as process:
                bench = Bench(
                    store=name,
                    process=process,
                    broker=kafka,
                    ports=ports,
                    stores=stores,
                    reader=TopicReader(f"127.0.0.1:{ports.broker}", list(TOPICS.values())),
                    db_command=target.db_command,
                    method=args.method,
                    result=result,
                )
                if n == 0:
                    baselines(bench, args, target)
                settle_and_idle(bench, args, point)
                bench.point = point
                result.points.append(point)
                print(format_point(point), file=sys.stderr, flush=True)
                for delay in args.gateway_delay_ms:
                    for rate in args.rates:
                        say(f"{name}: gateway +{delay:g} ms, offering {rate:g} refunds/s …")
                        level = run_level(bench, rate, args.seconds, int(delay))
                        result.levels.append(level)
                        print(format_rows([level])[-1], file=sys.stderr, flush=True)
                        print(format_cost_rows([level])[-1], file=sys.stderr, flush=True)
                say(f"{name}: stopping the stack …")
    return result


def baselines(bench: Bench, args: argparse.Namespace, target: StoreTarget) -> None:
    """Warm the stack up, learn who consumes what, and measure both bare baselines."""
    name, result = bench.store, bench.result
    say(f"{name}: warming up ({args.warmup:g} s at 5 refunds/s) …")
    warm = offer(bench.ports, 5, args.warmup, 0, args.method)
    asyncio.run(bench.reader.read())
    result.consumers = consumer_groups(bench.ports)
    say(
        f"{name}: warm-up: {sum(o.final == 'paid' for o in warm)}/{len(warm)} paid, "
        f"{len(bench.reader.values)} messages on the topics"
    )
    say(f"{name}: bare eventsourcing save rate for {args.baseline_seconds:g} s …")
    result.save = bare_save_rate(
        target.baseline_env(), args.baseline_seconds, db_command=target.db_command
    )
    say(f"{name}: {result.save.saves_per_second:,.1f} saves/s")
    say(f"{name}: bare aiokafka produce→consume, {args.kafka_messages} messages …")
    result.kafka = asyncio.run(
        produce_consume_rate(bench.reader.bootstrap, bench.reader.values, args.kafka_messages)
    )
    say(f"{name}: {result.kafka.messages_per_second:,.0f} messages/s")


# -- command line ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--store", choices=[*STORES, "both"], default="both")
    add(
        "--sqlite-dir",
        type=Path,
        help="run the SQLite stack on this folder's stores, e.g. filled beforehand with "
        "`python -m bench.history --data-dir DIR --refunds N`, and keep it (default: a new one)",
    )
    add(
        "--schema-prefix",
        help="run the PostgreSQL stack on the schemas PREFIX_<service> (e.g. filled with "
        "`python -m bench.history --postgres URL --schema-prefix PREFIX`) and keep them "
        "(default: fresh bench_e2e_<id>_* schemas, dropped afterwards)",
    )
    add("--rates", type=numbers, default=[10, 20, 40, 80], help="offered refunds/s")
    add("--seconds", type=float, default=20, help="seconds of offered load per level")
    add("--gateway-delay-ms", type=numbers, default=[0, 200], help="gateway answer delays")
    add(
        "--method",
        choices=METHODS,
        default="bank_transfer",
        help="how the orders were paid, so the refund's route: bank_transfer goes to the "
        "sandbox gateway, card/alipay/wechat_pay to the provider emulators (default: %(default)s)",
    )
    add(
        "--history",
        type=sizes,
        default=None,
        help="refunds of history to measure at, e.g. 1000,100000: before each point the "
        "stack is stopped, its stores filled to that many (bench/history.py), then restarted",
    )
    add(
        "--warmup",
        type=float,
        default=15,
        help="seconds of 5 refunds/s before the baselines: a fresh stack's first refunds pay "
        "one-time costs (connections opened, caches and code paths warmed), not per-refund ones",
    )
    add("--baseline-seconds", type=float, default=5, help="seconds of the bare save baseline")
    add("--kafka-messages", type=int, default=20_000, help="messages of the bare Kafka baseline")
    add("--idle-seconds", type=float, default=15, help="the idle window (spans SLA ticks)")
    add(
        "--settle-threshold",
        type=float,
        default=150,
        help="our four services together below this many CPU-ms/s for 3 s = quiet",
    )
    add("--settle-timeout", type=float, default=300, help="most seconds to wait for quiet")
    add(
        "--database-url",
        default=os.environ.get("REFUNDS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL for --store postgres (fresh schemas are created and dropped)",
    )
    add(
        "--set",
        action="append",
        type=setting,
        default=[],
        metavar="NAME=VALUE",
        help="a service setting for the stack, e.g. poll_interval_ms=50 or "
        "REFUNDS_POLL_INTERVAL_MS=50 (repeatable; a name no service reads is refused): to "
        "measure what a setting trades, latency against CPU",
    )
    add("--out", type=Path, default=Path("bench/results"))
    return parser


def _terminate(signum: int, frame: Any) -> None:
    # As Ctrl-C: the `with` blocks stop the stack and drop the schemas on the way out.
    signal.raise_signal(signal.SIGINT)


SETTINGS = (
    "rates",
    "seconds",
    "gateway_delay_ms",
    "method",
    "history",
    "warmup",
    "baseline_seconds",
    "kafka_messages",
    "idle_seconds",
    "settle_threshold",
    "settle_timeout",
    "set",
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if any(rate <= 0 for rate in args.rates):
        build_parser().error("--rates must be positive")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _terminate)
    stores = list(STORES) if args.store == "both" else [args.store]
    started = datetime.now(UTC)
    say(f"method {args.method}, history {args.history or 'as the warm-up leaves it'}")
    results: list[StoreRun] = []
    failed: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as folder:
            for name in stores:
                try:
                    results.append(bench_store(name, args, Path(folder)))
                except Exception as error:  # the other store's figures still count
                    say(f"{name}: FAILED, {type(error).__name__}: {error}")
                    failed.append(name)
    except KeyboardInterrupt:
        say("interrupted; the stack is stopped, its schemas dropped")
        return 130
    if not results:
        return 1
    print()
    for result in results:
        print(format_table(result))
        print(f"max throughput: {max_paid_rate(result.levels):.1f} paid/s")
        print()
    print(markdown(results))
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "method": args.method,
        "settings": {key: getattr(args, key) for key in SETTINGS}
        | {"stores": stores, "failed": failed},
        "environment": {
            "python": platform.python_version(),
            # Which build: a distribution's (/usr) and a source build's (pyenv) differ by
            # about 15 % in CPU per refund (scripts/python-for-venv.sh).
            "python_home": sys.base_prefix,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    json_path = write_json(results, meta, args.out / f"e2e-{stamp}.json")
    md_path = write_markdown(results, args.out / f"e2e-{stamp}.md")
    png_path = write_plot(results, args.out / f"e2e-{stamp}.png")
    print(f"wrote {json_path}, {md_path} and {png_path}")
    if failed:
        say(f"no figures for {', '.join(failed)} (see the error above)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
