"""End-to-end benchmark: refunds per second from `POST` to `paid`, against two raw baselines.

    .venv/bin/python -m bench.e2e [--store sqlite|postgres|both] [--rates 10,20,40,80]
        [--seconds 20] [--gateway-delay-ms 0,200] [--baseline-seconds 5]
        [--kafka-messages 20000] [--out bench/results]

Per store, starts the README's stack (`refunds dev` on free ports: SQLite files in a
throw-away folder, or PostgreSQL with fresh schemas `bench_e2e_<id>_*` that are dropped
afterwards, also on Ctrl-C or SIGTERM), warms it up with a few refunds, then measures on
that store and that broker, in the same run:

- the bare eventsourcing save rate of a comparable aggregate (bench/intake_create.py's
  baseline: one new aggregate per save carrying a refund request, one thread);
- the bare aiokafka produce→consume rate (bench/kafka_baseline.py: the stack's producer and
  consumer settings, messages sized and shaped like the stack's own CloudEvents);

and then offers auto-approved refunds at each rate from another process's point of view
(bench/loadgen.py, open loop, following each refund to `paid`). Per level it reports the
rate of refunds reaching `paid`, POST→paid p50/p95/p99, each stage's p50/p99 from the
events' own timestamps in the four ledgers: request (intake) → decision (review) → paid
(payout) → customer told (notify's paid e-mail); the stack's CPU-ms per refund (all its
processes, from /proc; and the local PostgreSQL server's); the events stored and Kafka
messages per refund (counted from the ledgers and the topics), and what share of each
baseline's rate the refunds per second use. The gateway answers at once, or
`--gateway-delay-ms` later (a provider's realistic answer time).

A benchmark, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.intake_create import (
    DEFAULT_DATABASE_URL,
    BareRate,
    StoreTarget,
    _finite,
    bare_save_rate,
    processes_cpu_seconds,
    say,
)
from bench.kafka_baseline import KafkaRate, TopicReader, produce_consume_rate
from bench.loadgen import Outcome, Settings, percentile, run
from refunds.devstack import SERVICES, Ports
from refunds.stores import Stores, open_service
from shared.auth import DEV_API_KEY
from shared.kafka import TOPICS
from shared.ledger import Ledger, data_of

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAGES = ("request→decision", "decision→paid", "paid→told", "request→told")
MOMENTS = ("request", "decision", "paid", "told")
STORES = ("sqlite", "postgres")
LAG_GAUGE = "refunds_consumer_lag_records"


@dataclass
class Level:
    store: str
    gateway_delay_ms: int
    offered_rate: float
    refunds: int
    paid: int
    paid_rate: float  # refunds reaching paid per second, over the level's span
    post_to_paid_ms: dict[str, float | None]
    stages_ms: dict[str, dict[str, float | None]]
    cpu_ms_per_refund: float  # the stack's processes (broker, sandboxes, services)
    db_cpu_ms_per_refund: float | None = None  # local PostgreSQL server processes
    counted: int = 0  # refunds whose events and messages were counted (see `counted_refunds`)
    events_per_refund: float | None = None  # ledger entries in the four stores
    messages_per_refund: float | None = None  # records published to Kafka
    deliveries_per_refund: float | None = None  # records consumed: each message * its groups
    save_share: float | None = None  # events/refund * paid/s ÷ bare save rate
    kafka_share: float | None = None  # deliveries/refund * paid/s ÷ bare produce→consume rate


@dataclass
class StoreRun:
    store: str
    save: BareRate | None = None
    kafka: KafkaRate | None = None
    consumers: dict[str, list[str]] = field(default_factory=dict)  # topic → consuming services
    levels: list[Level] = field(default_factory=list)


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


# -- the stack -------------------------------------------------------------------------------------


@contextmanager
def shielded() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up, so a second one cannot leave a mess."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def stack(
    data_dir: Path, database_url: str | None = None, schema_prefix: str | None = None
) -> Iterator[tuple[subprocess.Popen[str], Ports]]:
    base = Ports.free_base(30000 + os.getpid() % 100 * 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    cli = Path(sys.executable).with_name("refunds")
    command = [str(cli), "dev", "--data-dir", str(data_dir), "--base-port", str(base)]
    if database_url is not None:
        command += ["--postgres", database_url, "--schema-prefix", schema_prefix or "refunds"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert process.stdout is not None
        said: list[str] = []
        deadline = time.monotonic() + 120
        while True:
            line = process.stdout.readline()
            if line:
                said.append(line)
            if "Ctrl-C to stop" in line:
                break
            if (not line and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError("refunds dev did not start:\n" + "".join(said[-30:]))
        yield process, Ports.from_base(base)
    finally:
        with shielded():
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def throwaway_schemas(database_url: str | None, prefix: str | None) -> Iterator[None]:
    """On exit, drop every schema named `<prefix>_…` (the stack's and the baseline's)."""
    try:
        yield
    finally:
        if database_url is not None and prefix:
            with shielded():
                dropped = drop_schemas(database_url, prefix)
            say(f"dropped schemas {', '.join(dropped) or '(none)'}")


def drop_schemas(database_url: str, prefix: str) -> list[str]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '20s'")
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE left(nspname, %s) = %s ORDER BY nspname",
            (len(prefix) + 1, prefix + "_"),
        ).fetchall()
        names = [str(row[0]) for row in rows]
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    return names


def descendants(root: int) -> list[int]:
    """`root` and every process below it (the stack's broker, sandboxes and services)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children[int(fields[1])].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    return total


def db_cpu_seconds(db_command: str | None) -> dict[int, float]:
    return processes_cpu_seconds(db_command) if db_command else {}


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
    stores: Stores, refund_ids: set[str]
) -> tuple[dict[str, dict[str, datetime]], dict[str, int]]:
    """For each refund: when it was requested, decided, paid and the customer told; and how
    many events the four ledgers hold for it."""
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
            entries = [e for e in ledger.all_entries() if e.correlation in refund_ids]
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


# -- one store, one level --------------------------------------------------------------------------


@dataclass
class Bench:
    """A running stack and what the levels need to measure it."""

    store: str
    process: subprocess.Popen[str]
    ports: Ports
    stores: Stores
    reader: TopicReader
    db_command: str | None
    result: StoreRun


def offer(ports: Ports, rate: float, seconds: float, gateway_delay_ms: int) -> list[Outcome]:
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
    outcomes, _, _, _ = asyncio.run(
        run(f"http://127.0.0.1:{ports.intake}", DEV_API_KEY, settings, mix)
    )
    return outcomes


def run_level(bench: Bench, rate: float, seconds: float, gateway_delay_ms: int) -> Level:
    pids = descendants(bench.process.pid)
    cpu_before = cpu_seconds(pids)
    db_before = db_cpu_seconds(bench.db_command)
    outcomes = offer(bench.ports, rate, seconds, gateway_delay_ms)
    cpu = cpu_seconds(pids) - cpu_before
    db_after = db_cpu_seconds(bench.db_command)
    db_cpu = sum(t - db_before.get(pid, 0.0) for pid, t in db_after.items())
    paid = [o for o in outcomes if o.final == "paid" and o.final_ms is not None]
    # Each outcome's times count from its own scheduled start: put them on one clock.
    scheduled = [o.answered_at - (o.post_ms or 0) / 1000 for o in outcomes]
    paid_at = [o.answered_at - (o.post_ms or 0) / 1000 + (o.final_ms or 0) / 1000 for o in paid]
    span = max(paid_at) - min(scheduled) if paid else 0.0
    paid_rate = len(paid) / span if span else 0.0
    refund_ids = {o.refund_id for o in paid if o.refund_id}
    times, events = ledger_facts(bench.stores, refund_ids)
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
        cpu_ms_per_refund=cpu * 1000 / len(paid) if paid else 0.0,
        db_cpu_ms_per_refund=db_cpu * 1000 / len(paid) if paid and bench.db_command else None,
        counted=len(counted),
        events_per_refund=events_per_refund,
        messages_per_refund=mean_per_refund(published, counted),
        deliveries_per_refund=deliveries_per_refund,
        save_share=share(events_per_refund, paid_rate, save.saves_per_second if save else None),
        kafka_share=share(
            deliveries_per_refund, paid_rate, kafka.messages_per_second if kafka else None
        ),
    )


def bench_store(name: str, args: argparse.Namespace, folder: Path) -> StoreRun:
    """Start the stack on `name`'s store, measure both baselines, then every level."""
    database_url = args.database_url if name == "postgres" else None
    prefix = f"bench_e2e_{uuid.uuid4().hex[:8]}" if database_url else None
    data_dir = folder / name
    data_dir.mkdir()
    if database_url is None:
        baseline_dir = folder / f"{name}-baseline"
        baseline_dir.mkdir()
        target = StoreTarget.sqlite(baseline_dir)
    else:
        target = StoreTarget(
            "postgres", {}, database_url=database_url, baseline_schema=f"{prefix}_baseline"
        )
    result = StoreRun(name)
    with ExitStack() as cleanup:
        cleanup.enter_context(throwaway_schemas(database_url, prefix))
        where = f"PostgreSQL schemas {prefix}_*" if prefix else f"SQLite in {data_dir}"
        say(f"{name}: starting refunds dev ({where}) …")
        process, ports = cleanup.enter_context(stack(data_dir, database_url, prefix))
        bench = Bench(
            store=name,
            process=process,
            ports=ports,
            stores=Stores(data_dir, database_url, prefix),
            reader=TopicReader(f"127.0.0.1:{ports.broker}", list(TOPICS.values())),
            db_command=target.db_command,
            result=result,
        )
        say(f"{name}: warming up ({args.warmup:g} s at 5 refunds/s) …")
        warm = offer(ports, 5, args.warmup, 0)
        asyncio.run(bench.reader.read())
        result.consumers = consumer_groups(ports)
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
        for delay in args.gateway_delay_ms:
            for rate in args.rates:
                say(f"{name}: gateway +{delay:g} ms, offering {rate:g} refunds/s …")
                result.levels.append(run_level(bench, rate, args.seconds, int(delay)))
                print(format_rows(result.levels[-1:])[-1], file=sys.stderr, flush=True)
    return result


# -- the report ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def _per(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


COLUMNS = (
    "gw ms",
    "offered/s",
    "paid",
    "paid/s",
    "POST→paid p50/p95/p99 ms",
    *(f"{stage} p50/p99 ms" for stage in STAGES),
    "CPU-ms/refund",
    "db CPU-ms/refund",
    "events/refund",
    "% save rate",
    "msgs/refund pub/del",
    "% kafka rate",
)


def format_rows(levels: list[Level]) -> list[str]:
    """The header, a rule and one right-aligned row per level."""
    rows = [list(COLUMNS)]
    for level in levels:
        post = level.post_to_paid_ms
        rows.append(
            [
                str(level.gateway_delay_ms),
                f"{level.offered_rate:g}",
                str(level.paid),
                f"{level.paid_rate:.1f}",
                f"{_ms(post['p50'])} / {_ms(post['p95'])} / {_ms(post['p99'])}",
                *(
                    f"{_ms(level.stages_ms[s]['p50'])} / {_ms(level.stages_ms[s]['p99'])}"
                    for s in STAGES
                ),
                f"{level.cpu_ms_per_refund:.1f}",
                "-" if level.db_cpu_ms_per_refund is None else f"{level.db_cpu_ms_per_refund:.1f}",
                _per(level.events_per_refund),
                _pct(level.save_share),
                f"{_per(level.messages_per_refund)} / {_per(level.deliveries_per_refund)}",
                _pct(level.kafka_share),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(result: StoreRun) -> str:
    lines = [f"end to end, POST → paid — {result.store}", *format_rows(result.levels)]
    if result.save is not None:
        save = result.save
        db = "" if save.db_cpu_ms_per_save is None else f", {save.db_cpu_ms_per_save:.2f} db"
        lines.append(
            f"baseline, bare eventsourcing save: {save.saves_per_second:,.1f} saves/s "
            f"({save.saves} saves, one thread, one aggregate per save; "
            f"CPU-ms/save {save.cpu_ms_per_save:.2f} saver{db})"
        )
    if result.kafka is not None:
        kafka = result.kafka
        lines.append(
            f"baseline, bare aiokafka produce→consume: {kafka.messages_per_second:,.0f} msgs/s "
            f"({kafka.messages:,} messages of {kafka.mean_bytes:,.0f} B mean, "
            f"{kafka.partitions} partitions, one group; produce alone "
            f"{kafka.produce_per_second:,.0f} msgs/s; CPU-ms/msg {kafka.cpu_ms_per_message:.3f})"
        )
    if result.consumers:
        groups = "; ".join(f"{t} → {', '.join(s)}" for t, s in sorted(result.consumers.items()))
        lines.append(f"consumer groups per topic: {groups}")
    return "\n".join(lines)


def write_plot(results: list[StoreRun], path: Path) -> Path:
    """Throughput, POST→paid p99 and the share of each baseline, against the offered rate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    rate_axes, latency_axes, share_axes = figure.subplots(1, 3)
    markers = "osD^v"
    top = 0.0
    for i, result in enumerate(results):
        color = f"C{i}"
        delays = sorted({level.gateway_delay_ms for level in result.levels})
        for j, delay in enumerate(delays):
            chosen = [level for level in result.levels if level.gateway_delay_ms == delay]
            offered = [level.offered_rate for level in chosen]
            top = max([top, *offered])
            label = f"{result.store}, gateway +{delay} ms"
            style = {"color": color, "marker": markers[j % len(markers)]}
            rate_axes.plot(offered, [level.paid_rate for level in chosen], label=label, **style)
            p99 = [level.post_to_paid_ms["p99"] or 0 for level in chosen]
            latency_axes.plot(offered, p99, label=label, **style)
            for attribute, line, name in (
                ("save_share", "-", "save"),
                ("kafka_share", "--", "kafka"),
            ):
                values = [getattr(level, attribute) for level in chosen]
                shares = [None if v is None else v * 100 for v in values]
                share_axes.plot(offered, shares, linestyle=line, label=f"{label}: {name}", **style)
    rate_axes.plot([0, top], [0, top], color="grey", linestyle=":", label="offered")
    rate_axes.set(xlabel="offered refunds/s", ylabel="refunds paid/s", title="Throughput")
    latency_axes.set(xlabel="offered refunds/s", ylabel="ms", title="POST → paid p99")
    share_axes.set(
        xlabel="offered refunds/s",
        ylabel="% of the baseline's rate",
        title="events/s vs bare save rate (—), deliveries/s vs bare Kafka (--)",
    )
    for axes in (rate_axes, latency_axes, share_axes):
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="x-small")
    baselines = [
        f"{r.store}: bare save {r.save.saves_per_second:,.0f}/s, "
        f"bare Kafka {r.kafka.messages_per_second:,.0f} msgs/s"
        for r in results
        if r.save is not None and r.kafka is not None
    ]
    figure.suptitle("refunds POST → paid" + (" — " + "; ".join(baselines) if baselines else ""))
    figure.savefig(path, dpi=110)
    return path


def write_json(results: list[StoreRun], meta: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "e2e", **meta, "stores": [asdict(result) for result in results]}
    path.write_text(json.dumps(_finite(document), indent=2) + "\n")
    return path


# -- command line ----------------------------------------------------------------------------------


def _numbers(text: str) -> list[float]:
    try:
        numbers = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 10,20,40, got {text!r}") from None
    if not numbers or min(numbers) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return numbers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--store", choices=[*STORES, "both"], default="both")
    parser.add_argument(
        "--rates",
        type=_numbers,
        default=[10, 20, 40, 80],
        help="offered refunds/s, comma-separated",
    )
    parser.add_argument(
        "--seconds", type=float, default=20, help="seconds of offered load per level"
    )
    parser.add_argument(
        "--gateway-delay-ms", type=_numbers, default=[0, 200], help="gateway answer delays to run"
    )
    parser.add_argument(
        "--warmup", type=float, default=3, help="seconds of 5 refunds/s before the baselines"
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=5, help="seconds of the bare save baseline"
    )
    parser.add_argument(
        "--kafka-messages", type=int, default=20_000, help="messages of the bare Kafka baseline"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("REFUNDS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL for --store postgres (fresh schemas are created and dropped)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    return parser


def _terminate(signum: int, frame: Any) -> None:
    # As Ctrl-C: the `with` blocks stop the stack and drop the schemas on the way out.
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if any(rate <= 0 for rate in args.rates):
        build_parser().error("--rates must be positive")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _terminate)
    stores = list(STORES) if args.store == "both" else [args.store]
    started = datetime.now(UTC)
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
        print()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "settings": {
            key: getattr(args, key)
            for key in (
                "rates",
                "seconds",
                "gateway_delay_ms",
                "warmup",
                "baseline_seconds",
                "kafka_messages",
            )
        }
        | {"stores": stores, "failed": failed},
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    json_path = write_json(results, meta, args.out / f"e2e-{stamp}.json")
    png_path = write_plot(results, args.out / f"e2e-{stamp}.png")
    print(f"wrote {json_path} and {png_path}")
    if failed:
        say(f"no figures for {', '.join(failed)} (see the error above)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
