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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.intake_create import (
    REPO,
    busy_percent,
    free_port,
    machine_ticks,
    percentiles,
    process_cpu_seconds,
    processes_cpu_seconds,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
GOAL_MS = 300.0  # issue 17: the first page under 300 ms with 10,000 open cases
PAGE_SIZE = 20  # services.console.pages.queue.PAGE_SIZE
PERSON = "ann"
PASSWORD = "demo"  # noqa: S105 - the sandbox provider's demo staff (dev only)
IDLE_SECONDS = 6.0  # longer than review's SLA clock interval (5 s), whose turns count as idle
REASONS = ("damaged", "quality_defect", "not_as_described", "wrong_item")
YUAN = (600, 1200, 2500, 4000, 12_000)  # over the 500.00 limit: general/important/major tiers


@dataclass
class Timing:
    """One page asked `requests` times of one server: latencies and CPU per request."""

    store: str
    page: str
    target: str  # "console" (GET /queue) or "review" (GET /v1/cases, the raw baseline)
    requests: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float
    rows: int  # cases on the page (checked: the page was really there)
    cpu_ms: dict[str, float | None] = field(default_factory=dict)  # per process kind
    busy_percent: float = 0.0
    code: str = "this"  # whose review and console: this checkout, or `--before`'s
    idle_cpu_ms_per_s: dict[str, float] = field(default_factory=dict)  # subtracted


# -- filling review's store ---------------------------------------------------------------------


def fill(app: Any, cases: int) -> list[str]:
    """`cases` refund requests over the automatic-approval limit, a minute apart, delivered
    as intake's CloudEvents; returns their refund ids, oldest first."""
    from services.review.queue import ReviewQueue
    from shared.contracts import (
        CustomerContact,
        EvidenceRecord,
        MoneyModel,
        OrderLine,
        PaymentRoute,
        RefundedItem,
        RefundRequestedV1,
        envelope,
    )
    from shared.ids import public_id

    started = time.perf_counter()
    opened = datetime.now(UTC) - timedelta(minutes=cases + 1)
    ids: list[str] = []
    for n in range(cases):
        at = opened + timedelta(minutes=n)
        refund_id = public_id("rf", uuid.uuid4())
        money = MoneyModel(amount=YUAN[n % len(YUAN)] * 100, currency="CNY")
        request = RefundRequestedV1(
            refund_id=refund_id,
            tenant="bench",
            order_id=f"ORD-bench-{n}",
            customer_id=f"C-bench-{n}",
            amount=money,
            paid=money,
            payment=PaymentRoute(method="alipay", reference=f"pay-{n}"),
            items=[RefundedItem(sku="TV-55", quantity=1)],
            reason=REASONS[n % len(REASONS)],
            desired_outcome="full_refund",
            channel="app",
            customer=CustomerContact(email="li.wei@example.com"),
            requested_at=at,
            paid_at=at - timedelta(days=4),
            delivered_at=at - timedelta(days=2),
            order_lines=[
                OrderLine(sku="TV-55", category="electronics", quantity=1, unit_price=money)
            ],
            evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/1.jpg")],
        )
        message = envelope(
            request,
            source="intake",
            event_id=str(uuid.uuid4()),
            position=n + 1,
            time=at,
            causation_id=None,
        )
        if not app.handle(message):
            raise RuntimeError(f"review did not take refund request {n}")
        ids.append(refund_id)
        if (n + 1) % 1000 == 0:
            rate = (n + 1) / (time.perf_counter() - started)
            print(f"  filled {n + 1:,} of {cases:,} cases ({rate:,.0f}/s)", file=sys.stderr)
    ReviewQueue(app).catch_up()  # review's process finds its queue caught up
    return ids


# -- the processes --------------------------------------------------------------------------------


class Process:
    """`python -m <module>` in its own session, stopped with SIGTERM."""

    def __init__(
        self, name: str, module: str, env: dict[str, str], log: Path, port: int, source: Path
    ) -> None:
        self.name, self.module, self.log_path, self.port = name, module, log, port
        self.source = source
        self.url = f"http://127.0.0.1:{port}"
        parent = {k: v for k, v in os.environ.items() if not k.startswith(("REFUNDS_", "SANDBOX_"))}
        self.env = parent | {"PYTHONUNBUFFERED": "1"} | env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, health: str = "/healthz", timeout: float = 60) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=self.source,  # `-m` puts it first on sys.path, before the editable install
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(health).status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {health} in {timeout} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@dataclass
class Stack:
    identity: Process
    review: Process
    console: Process
    db_command: str | None  # the local PostgreSQL server's process name, if any


@contextlib.contextmanager
def running(
    store_env: dict[str, str],
    folder: Path,
    db_command: str | None,
    source: Path = REPO,
    logs: Path | None = None,
) -> Iterator[Stack]:
    """The identity provider, review and the console on free ports (from the checkout at
    `source`); stopped on exit."""
    logs = logs or folder
    identity_port, review_port, console_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{identity_port}"
    identity = Process(
        "identity",
        "sandbox.identity",
        {
            "SANDBOX_IDENTITY_HOST": "127.0.0.1",
            "SANDBOX_IDENTITY_PORT": str(identity_port),
            "SANDBOX_IDENTITY_ISSUER": issuer,
            "SANDBOX_DATA_DIR": str(folder / "idp"),
        },
        logs / "identity.log",
        identity_port,
        source,
    )
    common = {"REFUNDS_HOST": "127.0.0.1", "REFUNDS_LOG_LEVEL": "WARNING", **store_env}
    review = Process(
        "review",
        "services.review",
        common
        | {
            "REFUNDS_ENV": "test",
            "REFUNDS_PORT": str(review_port),
            "REFUNDS_RELAY_ENABLED": "false",
            "REFUNDS_CONSUMER_ENABLED": "false",
            "REFUNDS_OIDC_ISSUER": issuer,
        },
        logs / "review.log",
        review_port,
        source,
    )
    console_env = common | {
        "REFUNDS_ENV": "dev",
        "REFUNDS_PORT": str(console_port),
        "REFUNDS_CONSOLE_URL": f"http://127.0.0.1:{console_port}",
        "REFUNDS_OIDC_ISSUER": issuer,
        "REFUNDS_REVIEW_URL": review.url,
    }
    if "REFUNDS_DATABASE_SCHEMA" in store_env:  # the console's sessions in a schema of their own
        console_env["REFUNDS_DATABASE_SCHEMA"] = store_env["REFUNDS_DATABASE_SCHEMA"].replace(
            "_review", "_console"
        )
    console = Process(
        "console", "services.console", console_env, logs / "console.log", console_port, source
    )
    started: list[Process] = []
    try:
        for process in (identity, review, console):
            process.start()
            started.append(process)
        yield Stack(identity, review, console, db_command)
    finally:
        for process in reversed(started):
            process.stop()


# -- signing in -----------------------------------------------------------------------------------


def sign_in(console: httpx.Client, issuer: str) -> None:
    """As a browser: the console sends the person to the provider's form and back."""
    to_login = console.get("/queue")
    assert to_login.status_code == 303, f"/queue without a session: {to_login.status_code}"
    to_provider = console.get(to_login.headers["location"])
    assert to_provider.status_code == 302, to_provider.text
    authorize = to_provider.headers["location"]
    with httpx.Client(timeout=10) as provider:
        form = provider.get(authorize)
        handle = re.search(r'name="handle" value="([^"]+)"', form.text)
        assert handle is not None, f"no sign-in form at {authorize}"
        answer = provider.post(
            f"{issuer}/authorize",
            data={"handle": handle.group(1), "username": PERSON, "password": PASSWORD},
        )
    assert answer.status_code == 302, answer.text
    landed = console.get(answer.headers["location"])
    assert landed.status_code == 303, f"callback: {landed.status_code} {landed.text[:300]}"


def access_token(issuer: str) -> str:
    """The person's own access token, as the console holds it, for the raw baseline."""
    from tests.support.identity import sign_in as token_sign_in

    return str(token_sign_in(issuer, PERSON)["access_token"])


# -- timing ---------------------------------------------------------------------------------------


def pages(ids: list[str]) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """Each page's console query and the review query the console sends for it."""
    halfway = ids[len(ids) // 2]
    base = {"limit": PAGE_SIZE}
    return {
        "first page": ({}, base),
        "filtered": (
            {"tier": "important", "reason": "damaged", "min": "1000"},
            base
            | {"tier": "important", "reason": "damaged", "currency": "CNY", "min_amount": 100_000},
        ),
        "later page": ({"starting_after": halfway}, base | {"starting_after": halfway}),
    }


def cpu_now(stack: Stack) -> dict[str, float]:
    found = {
        "console": process_cpu_seconds(stack.console.pid),
        "review": process_cpu_seconds(stack.review.pid),
    }
    if stack.db_command:
        found["db"] = sum(processes_cpu_seconds(stack.db_command).values())
    return found


def settle(stack: Stack, *, quiet: float = 0.1, timeout: float = 40.0) -> float:
    """Wait until review has done what it does once after start (its SLA clock's first look at
    every open case) — under `quiet` CPU-s per s over a second — or `timeout`; returns the
    seconds waited (== timeout: review never went quiet, e.g. an SLA clock busy every turn)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = process_cpu_seconds(stack.review.pid)
        time.sleep(1.0)
        if process_cpu_seconds(stack.review.pid) - before < quiet:
            break
    return time.monotonic() - started


def idle_rates(stack: Stack) -> dict[str, float]:
    """CPU seconds per second each part uses while nobody asks anything (review's queue
    follower, PostgreSQL's own housekeeping, …)."""
    before, started = cpu_now(stack), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    after, elapsed = cpu_now(stack), time.perf_counter() - started
    return {name: (after[name] - before[name]) / elapsed for name in before}


def rows_on(target: str, response: httpx.Response) -> int:
    if target == "review":
        return len(response.json()["data"])
    return len(set(re.findall(r'href="/cases/([^"?/]+)"', response.text)))


def time_page(
    stack: Stack,
    client: httpx.Client,
    *,
    store: str,
    page: str,
    target: str,
    path: str,
    params: dict[str, Any],
    requests: int,
    warmup: int,
    idle: dict[str, float],
) -> Timing:
    for _ in range(warmup):
        client.get(path, params=params).raise_for_status()
    latencies: list[float] = []
    rows = 0
    busy0, total0 = machine_ticks()
    cpu0, started = cpu_now(stack), time.perf_counter()
    for _ in range(requests):
        sent = time.perf_counter()
        response = client.get(path, params=params)
        latencies.append((time.perf_counter() - sent) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{target} {path}: {response.status_code} {response.text[:500]}")
        rows = rows_on(target, response)
    elapsed = time.perf_counter() - started
    cpu1 = cpu_now(stack)
    busy1, total1 = machine_ticks()
    net = {
        name: max(0.0, cpu1[name] - cpu0[name] - idle[name] * elapsed) * 1000 / requests
        for name in cpu0
    }
    p50, p95, top = percentiles(latencies, [50, 95, 100])
    return Timing(
        store=store,
        page=page,
        target=target,
        requests=requests,
        p50_ms=p50,
        p95_ms=p95,
        max_ms=top,
        mean_ms=sum(latencies) / len(latencies),
        rows=rows,
        cpu_ms={"console": net["console"], "review": net["review"], "db": net.get("db")},
        busy_percent=100 * (busy1 - busy0) / max(1, total1 - total0),
        idle_cpu_ms_per_s={name: rate * 1000 for name, rate in idle.items()},
    )


def measure(
    stack: Stack, ids: list[str], *, store: str, requests: int, warmup: int
) -> list[Timing]:
    issuer = stack.identity.url
    token = access_token(issuer)
    timings: list[Timing] = []
    with (
        httpx.Client(base_url=stack.console.url, timeout=30) as console,
        httpx.Client(
            base_url=stack.review.url,
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        ) as review,
    ):
        sign_in(console, issuer)
        waited = settle(stack)
        print(f"  review settled after {waited:.0f} s", file=sys.stderr)
        idle = idle_rates(stack)
        for page, (console_query, review_query) in pages(ids).items():
            for target, client, path, params in (
                ("review", review, "/v1/cases", review_query),
                ("console", console, "/queue", console_query),
            ):
                timing = time_page(
                    stack,
                    client,
                    store=store,
                    page=page,
                    target=target,
                    path=path,
                    params=params,
                    requests=requests,
                    warmup=warmup,
                    idle=idle,
                )
                timings.append(timing)
                print(
                    f"  {page:<11} {target:<8} p50 {timing.p50_ms:7.1f} ms ({timing.rows} cases)",
                    file=sys.stderr,
                )
    return timings


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


def drop_schemas(url: str, prefix: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for part in ("review", "keystore", "console"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}_{part}" CASCADE')


# -- report ---------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def format_table(timings: list[Timing], cases: int) -> str:
    header = (
        f"{'store':<9} {'code':<6} {'page':<11} {'server':<26} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'max ms':>8} {'cases':>5} {'console CPU':>11} {'review CPU':>10} {'db CPU':>7} "
        f"{'busy %':>6}"
    )
    lines = [f"console queue page with {cases:,} open cases (CPU: ms per request, net of idle)"]
    lines += [header, "-" * len(header)]
    for t in timings:
        server = "console GET /queue" if t.target == "console" else "review GET /v1/cases (raw)"
        lines.append(
            f"{t.store:<9} {t.code:<6} {t.page:<11} {server:<26} {t.p50_ms:>8,.1f} "
            f"{t.p95_ms:>8,.1f} {t.max_ms:>8,.1f} {t.rows:>5} {_ms(t.cpu_ms.get('console')):>11} "
            f"{_ms(t.cpu_ms.get('review')):>10} {_ms(t.cpu_ms.get('db')):>7} "
            f"{t.busy_percent:>6.0f}"
        )
    for t in timings:
        if t.target == "console" and t.page == "first page":
            idle = ", ".join(f"{k} {v:,.1f}" for k, v in t.idle_cpu_ms_per_s.items())
            lines.append(f"{t.store} ({t.code}): idle CPU-ms per second (subtracted): {idle}")
    for t in timings:
        if t.target == "console" and t.page == "first page":
            verdict = "met" if t.p95_ms < GOAL_MS else "NOT met"
            lines.append(
                f"{t.store} ({t.code}): first page p95 {t.p95_ms:,.1f} ms "
                f"(goal < {GOAL_MS:.0f} ms: {verdict})"
            )
    return "\n".join(lines)


def write_plot(timings: list[Timing], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(f"{t.store} {t.code}\n{t.page}" for t in timings))
    figure = Figure(figsize=(max(8, 1.1 * len(labels)), 5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.4
    for index, target in enumerate(("review", "console")):
        p50 = [
            next(
                (
                    t.p50_ms
                    for t in timings
                    if f"{t.store} {t.code}\n{t.page}" == label and t.target == target
                ),
                0.0,
            )
            for label in labels
        ]
        p95 = [
            next(
                (
                    t.p95_ms
                    for t in timings
                    if f"{t.store} {t.code}\n{t.page}" == label and t.target == target
                ),
                0.0,
            )
            for label in labels
        ]
        xs = [i + index * width for i in range(len(labels))]
        name = "review GET /v1/cases" if target == "review" else "console GET /queue"
        axes.bar(xs, p95, width=width, alpha=0.4, label=f"{name} p95")
        axes.bar(xs, p50, width=width, label=f"{name} p50")
    axes.axhline(GOAL_MS, color="grey", linestyle="--", label="goal (first page)")
    axes.set_xticks([i + width / 2 for i in range(len(labels))], labels, fontsize="small")
    axes.set_ylabel("ms per request")
    axes.set_title("The console's queue page and review's raw list")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


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
