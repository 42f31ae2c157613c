"""Benchmark of intake's `POST /v1/refunds` against the bare eventsourcing save rate.

    .venv/bin/python -m bench.intake_create [--store sqlite|postgres|both] [--seconds N]
        [--concurrency 1,16,64] [--warmup S] [--clients per-worker|shared] [--out bench/results]

Per store, intake runs as its own process (`python -m services.intake`, relay and
consumer off) on a throw-away store: a temporary SQLite folder, or a fresh
PostgreSQL schema dropped afterwards. An asyncio load generator (one process,
httpx, keep-alive, a client per worker) posts distinct refund requests at each
concurrency level; the same store is first measured with a plain eventsourcing
Application saving an equivalent aggregate, one per save, on one thread. The goal
is intake's best throughput ≥ 70 % of that bare save rate.

A benchmark, not a test: nothing here asserts on timings.

Here: the bare baseline, a store's run and the command line. The request and one level's
load: bench/intake_create_load.py; intake's process and the stores:
bench/intake_create_stack.py; CPU from /proc: bench/intake_create_cpu.py; results, the table,
JSON and the plot: bench/intake_create_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.intake_create_cpu import busy_percent, processes_cpu_seconds
from bench.intake_create_load import refund_body, run_level
from bench.intake_create_report import StoreResult, _num, format_table, write_json, write_plot
from bench.intake_create_stack import DEFAULT_DATABASE_URL, REPO, IntakeProcess, StoreTarget

STORES = ("sqlite", "postgres")


# -- the bare eventsourcing baseline -------------------------------------------------------------


class BenchRefund(Aggregate):
    """An aggregate whose creation event carries the request, as intake's does."""

    @event("Requested")
    def __init__(self, *, request: dict[str, Any]) -> None:
        self.request = request


class BareApplication(Application[uuid.UUID]):
    name = "BenchBaseline"


@dataclass
class BareRate:
    saves_per_second: float
    saves: int
    cpu_ms_per_save: float
    db_cpu_ms_per_save: float | None


def bare_save_rate(
    env: dict[str, str], seconds: float, warmup: float = 0.5, db_command: str | None = None
) -> BareRate:
    """Saves per second of one new aggregate per save, on this thread, for `seconds`."""
    app = BareApplication(env=env)
    counter = itertools.count(1)
    try:
        until = time.perf_counter() + warmup
        while time.perf_counter() < until:
            app.save(BenchRefund(request=refund_body(-next(counter))))
        saves = 0
        db_before = processes_cpu_seconds(db_command) if db_command else {}
        cpu_before = time.process_time()
        start = time.perf_counter()
        until = start + seconds
        while (now := time.perf_counter()) < until:
            app.save(BenchRefund(request=refund_body(-next(counter))))
            saves += 1
        cpu = time.process_time() - cpu_before
        db_ms = None
        if db_command:
            db_after = processes_cpu_seconds(db_command)
            db_cpu = sum(t - db_before.get(pid, 0.0) for pid, t in db_after.items())
            db_ms = db_cpu * 1000 / max(1, saves)
        return BareRate(saves / (now - start), saves, cpu * 1000 / max(1, saves), db_ms)
    finally:
        app.close()


# -- per store -----------------------------------------------------------------------------------


def bench_store(
    target: StoreTarget,
    *,
    seconds: float,
    warmup: float,
    concurrency: Sequence[int],
    clients: str = "per-worker",
    ids: Iterator[int],
    run_id: str,
    log_dir: Path,
    source: Path = REPO,
) -> StoreResult:
    say(f"{target.name}: bare eventsourcing save rate for {seconds:g} s …")
    bare = bare_save_rate(
        target.baseline_env(), seconds, warmup=min(warmup, 1.0), db_command=target.db_command
    )
    say(f"{target.name}: {bare.saves_per_second:,.1f} saves/s")
    result = StoreResult(
        target.name,
        bare.saves_per_second,
        bare.saves,
        bare.cpu_ms_per_save,
        bare.db_cpu_ms_per_save,
    )
    log = log_dir / f"intake-{target.name}.log"
    with IntakeProcess(target.intake_env, log, source) as intake:
        say(f"{target.name}: intake pid {intake.pid} at {intake.url}")
        for level in concurrency:
            say(f"{target.name}: concurrency {level}, {warmup:g} s warm-up + {seconds:g} s …")
            measured = asyncio.run(
                run_level(
                    intake.url,
                    level,
                    seconds,
                    warmup,
                    ids,
                    run_id,
                    intake.pid,
                    target.db_command,
                    clients=level if clients == "per-worker" else 1,
                )
            )
            say(
                f"{target.name}: concurrency {level}: {measured.throughput:,.1f} req/s, "
                f"p99 {_num(measured.p99_ms, 2)} ms, {measured.errors} errors"
            )
            result.levels.append(measured)
    return result


# -- command line --------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def concurrency_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1,16,64, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers")
    return levels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake_create",
        description="Benchmark intake's POST /v1/refunds against the bare eventsourcing save rate.",
    )
    parser.add_argument("--store", choices=[*STORES, "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per level")
    parser.add_argument(
        "--concurrency", type=concurrency_levels, default=[1, 16, 64], help="e.g. 1,16,64"
    )
    parser.add_argument(
        "--clients",
        choices=["per-worker", "shared"],
        default="per-worker",
        help="one keep-alive httpx client per worker (default), or one shared by all workers "
        "(max_connections = concurrency; its pool costs the load generator ~13 CPU-ms per "
        "request at 64 connections, so it measures itself more than intake)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--database-url",
        default=os.environ.get("REFUNDS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL for --store postgres (a fresh schema is created and dropped)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="checkout whose services.intake to run (default: this one), e.g. a "
        "`git archive <commit>` export, to measure one commit while the tree is being edited",
    )
    return parser


def _git_commit(where: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=where, capture_output=True)
    return done.stdout.decode().strip() + ("-dirty" if dirty.stdout.strip() else "")


def _terminate(signum: int, frame: Any) -> None:
    # Handled as Ctrl-C: asyncio.run cancels the load and raises KeyboardInterrupt, which
    # unwinds through the `with` blocks that stop intake and drop the schemas.
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.source.resolve() != REPO:  # the baseline's shared.store comes from there too
        sys.path.insert(0, str(args.source.resolve()))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _terminate)
    stores = list(STORES) if args.store == "both" else [args.store]
    started = datetime.now(UTC)
    run_id = uuid.uuid4().hex[:8]
    idle_check = busy_percent(1.0)
    if idle_check > 20:
        say(f"warning: the machine is {idle_check:.0f} % busy before the run; results will be low")
    ids = itertools.count(1)
    results: list[StoreResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
            for name in stores:
                folder = Path(tmp) / name
                folder.mkdir()
                target = (
                    StoreTarget.sqlite(folder)
                    if name == "sqlite"
                    else StoreTarget.postgres(args.database_url)
                )
                try:
                    results.append(
                        bench_store(
                            target,
                            seconds=args.seconds,
                            warmup=args.warmup,
                            concurrency=args.concurrency,
                            clients=args.clients,
                            ids=ids,
                            run_id=run_id,
                            log_dir=Path(tmp),
                            source=args.source.resolve(),
                        )
                    )
                finally:
                    target.cleanup()
    except KeyboardInterrupt:
        say("interrupted; intake stopped, schemas dropped")
        return 130
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "stores": stores,
            "clients": args.clients,
        },
        "environment": {
            "source": str(args.source.resolve()),
            "commit": _git_commit(REPO) if args.source.resolve() == REPO else None,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "busy_before_percent": idle_check,
        },
    }
    print()
    for result in results:
        print(format_table(result))
        print()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    json_path = write_json(results, meta, args.out / f"intake_create-{stamp}.json")
    png_path = write_plot(results, args.out / f"intake_create-{stamp}.png")
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
