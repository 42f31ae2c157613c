"""Benchmark of the staff console's queue page with many open cases (issue 17).

    .venv/bin/python -m bench.console_queue [--store sqlite|postgres|both] [--cases 10000]
        [--requests 50] [--warmup 5] [--out bench/results]

Per store, review's store (a temporary SQLite folder, or fresh PostgreSQL schemas dropped
afterwards) is filled in-process through `ReviewApplication.handle` with `--cases` refund
requests over the automatic-approval limit, so each opens a case for a person. Then the
sandbox identity provider, review (`python -m services.review`, relay and consumer off) and
the console (`python -m services.console`) run as processes of their own; a person (ann,
reviewer) signs in through the provider's form as a browser would, and each page below is
asked for `--requests` times, one at a time on a keep-alive connection, after `--warmup`:

- first page: `GET /queue` (the newest 20 cases);
- filtered: `GET /queue?tier=important&reason=damaged&min=1000` (tier, reason, amount);
- later page: `GET /queue?starting_after=<the case halfway down>`.

The raw baseline, in the same run: review's `GET /v1/cases` with the very query the console
sends for that page, with the person's own access token. Columns: latency p50/p95/max (wall
time of one request on loopback: the server's time plus a sub-millisecond round trip), and
CPU-ms per request of the console, of review and of the local PostgreSQL server, net of what
each used while idle (measured just before). Prints a table, writes JSON and a PNG.
A benchmark, not a test.

Here: a store's run and the command line. The store filled and the processes:
bench/console_queue_stack.py; signing in and timing the pages: bench/console_queue_timing.py;
the table and the plot: bench/console_queue_report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.console_queue_report import Timing, format_table, write_plot
from bench.console_queue_stack import drop_schemas, fill, running
from bench.console_queue_timing import measure
from bench.intake_create_cpu import busy_percent
from bench.intake_create_stack import REPO

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


# -- per store ------------------------------------------------------------------------------------


def bench_store(store: str, args: argparse.Namespace) -> list[Timing]:
    from services.review.application import ReviewApplication
    from services.review.policy_document import default_policy
    from services.review.settings import ReviewSettings
    from shared.store import store_env

    with tempfile.TemporaryDirectory(prefix="bench-console-queue-") as name:
        folder = Path(name)
        prefix = f"bench_cq_{uuid.uuid4().hex[:8]}"
        if store == "postgres":
            env = {
                "REFUNDS_DATABASE_URL": args.database_url,
                "REFUNDS_DATABASE_SCHEMA": f"{prefix}_review",
                "REFUNDS_KEYSTORE_SCHEMA": f"{prefix}_keystore",
            }
            options: dict[str, Any] = {
                "database_url": args.database_url,
                "database_schema": f"{prefix}_review",
                "keystore_schema": f"{prefix}_keystore",
            }
            host = httpx.URL(args.database_url).host
            db_command = "postgres" if host in {"127.0.0.1", "localhost", "::1", ""} else None
        else:
            env = {"REFUNDS_DATA_DIR": str(folder)}
            options = {"data_dir": folder, "database_url": None}
            db_command = None
        try:
            settings = ReviewSettings.model_validate({"env": "test", **options})
            app = ReviewApplication(default_policy(), env=store_env(settings, "review"))
            try:
                app.record_shipped_policy()
                print(f"{store}: filling review with {args.cases:,} open cases…", file=sys.stderr)
                ids = fill(app, args.cases)
            finally:
                app.close()
            timings: list[Timing] = []
            codes = [("before", args.before)] if args.before else []
            for code, source in [*codes, ("this", args.source)]:
                print(f"{store}: review and the console from {source}", file=sys.stderr)
                logs = folder / f"logs-{code}"
                logs.mkdir()
                with running(env, folder, db_command, source, logs) as stack:
                    busy = busy_percent(1.0)
                    if busy > 20:
                        print(
                            f"  warning: the machine is {busy:.0f} % busy before we start",
                            file=sys.stderr,
                        )
                    for timing in measure(
                        stack, ids, store=store, requests=args.requests, warmup=args.warmup
                    ):
                        timing.code = code
                        timings.append(timing)
            return timings
        finally:
            if store == "postgres":
                drop_schemas(args.database_url, prefix)


# -- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console_queue", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--cases", type=int, default=10_000, help="open cases (10,000)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page (50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per page (5)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("REFUNDS_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="also run another checkout's review and console on the same store, first",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="run review and the console from another checkout (e.g. a commit, for a before)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the processes stop and the PostgreSQL schemas are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.cases < 2 or args.requests < 1 or args.warmup < 0:
        raise SystemExit("--cases ≥ 2, --requests ≥ 1, --warmup ≥ 0")
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    timings = [t for store in stores for t in bench_store(store, args)]
    print(format_table(timings, args.cases))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "at": stamp,
        "cases": args.cases,
        "requests": args.requests,
        "warmup": args.warmup,
        "source": str(args.source),
        "before": None if args.before is None else str(args.before),
    }
    (args.out / f"console_queue-{stamp}.json").write_text(
        json.dumps(
            {"benchmark": "console_queue", "meta": meta, "timings": [asdict(t) for t in timings]},
            indent=2,
        )
    )
    print(f"plot: {write_plot(timings, args.out / f'console_queue-{stamp}.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
