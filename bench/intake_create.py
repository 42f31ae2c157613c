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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from refunds.cli import EXAMPLE_REFUND

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
API_KEY = "sk_bench_" + "0123456789abcdef" * 2  # 41 characters; only ever a local key
TENANT = "bench"
GOAL = 0.70
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STORES = ("sqlite", "postgres")


# -- the request ---------------------------------------------------------------------------------


def refund_body(n: int) -> dict[str, Any]:
    """The CLI's example request (kept valid by a unit test) as order `ORD-bench-<n>`."""
    body = copy.deepcopy(EXAMPLE_REFUND)
    body["order"]["id"] = f"ORD-bench-{n}"
    return body


# -- results -------------------------------------------------------------------------------------


@dataclass
class LevelResult:
    """One concurrency level against one store."""

    concurrency: int
    seconds: float
    requests: int  # 201 responses completed inside the measured window
    errors: int  # anything else completed inside it (other statuses, transport errors)
    throughput: float  # 201s per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    intake_cpu_ms_per_request: float
    db_cpu_ms_per_request: float | None  # local PostgreSQL server processes; None for SQLite
    client_cpu_ms_per_request: float
    machine_busy_percent: float  # of all cores, during the window
    other_busy_percent: float = math.nan  # of all cores, by anything but intake, db and client
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_sample: str | None = None


@dataclass
class StoreResult:
    store: str
    bare_save_rate: float  # saves per second, one thread, one aggregate per save
    bare_saves: int
    bare_cpu_ms_per_save: float = math.nan  # the saving process (all its threads)
    bare_db_cpu_ms_per_save: float | None = None  # local PostgreSQL server processes
    levels: list[LevelResult] = field(default_factory=list)

    @property
    def best(self) -> LevelResult | None:
        return max(self.levels, key=lambda level: level.throughput, default=None)

    @property
    def ratio(self) -> float:
        best = self.best
        if best is None or self.bare_save_rate <= 0:
            return math.nan
        return best.throughput / self.bare_save_rate

    @property
    def meets_goal(self) -> bool:
        return not math.isnan(self.ratio) and self.ratio >= GOAL

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        data = asdict(self)
        data["best_concurrency"] = best.concurrency if best else None
        data["best_throughput"] = best.throughput if best else None
        data["ratio"] = self.ratio
        data["goal"] = GOAL
        data["meets_goal"] = self.meets_goal
        return data


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Percentiles (0-100) by linear interpolation between ranks (numpy's default); NaN if empty."""
    if not values:
        return [math.nan for _ in qs]
    ordered = sorted(values)
    last = len(ordered) - 1
    found = []
    for q in qs:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q} is outside 0..100")
        position = last * q / 100
        low = math.floor(position)
        high = min(low + 1, last)
        found.append(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
    return found


def percentile(values: Sequence[float], q: float) -> float:
    return percentiles(values, [q])[0]


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


COLUMNS = (
    "concurrency",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "intake CPU ms/req",
    "db CPU ms/req",
    "client CPU ms/req",
    "machine busy %",
    "other busy %",
)


def format_table(result: StoreResult) -> str:
    """The per-store report: one aligned row per level, then the comparison with the bare rate."""
    rows = [list(COLUMNS)]
    for level in result.levels:
        rows.append(
            [
                str(level.concurrency),
                _num(level.throughput),
                _num(level.p50_ms, 2),
                _num(level.p95_ms, 2),
                _num(level.p99_ms, 2),
                str(level.errors),
                _num(level.intake_cpu_ms_per_request, 2),
                _num(level.db_cpu_ms_per_request, 2),
                _num(level.client_cpu_ms_per_request, 2),
                _num(level.machine_busy_percent, 0),
                _num(level.other_busy_percent, 0),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [f"intake POST /v1/refunds — {result.store}"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * width for width in widths))
    for level in result.levels:
        if level.errors:
            kinds = ", ".join(
                f"{kind} x{count}" for kind, count in sorted(level.error_kinds.items())
            )
            lines.append(f"  errors at concurrency {level.concurrency}: {kinds}")
            if level.error_sample:
                lines.append(f"    first: {level.error_sample}")
    lines.append(
        f"bare eventsourcing save rate: {_num(result.bare_save_rate)} saves/s "
        f"({result.bare_saves} saves, one thread, one aggregate per save; "
        f"CPU ms/save: {_num(result.bare_cpu_ms_per_save, 2)} saver, "
        f"{_num(result.bare_db_cpu_ms_per_save, 2)} db)"
    )
    best = result.best
    if best is not None:
        verdict = "met" if result.meets_goal else "NOT met"
        lines.append(
            f"best intake throughput: {_num(best.throughput)} req/s at concurrency "
            f"{best.concurrency} = {_num(result.ratio * 100)} % of the bare save rate "
            f"(goal ≥ {GOAL * 100:.0f} %: {verdict})"
        )
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """JSON has no NaN: write None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def write_json(results: list[StoreResult], meta: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "intake_create", **meta, "stores": [r.to_dict() for r in results]}
    path.write_text(json.dumps(_finite(document), indent=2) + "\n")
    return path


def write_plot(results: list[StoreResult], path: Path) -> Path:
    """Throughput and p99 against concurrency, per store; the bare save rate as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    throughput, tail = figure.subplots(1, 2)
    levels = sorted({level.concurrency for r in results for level in r.levels})
    for i, result in enumerate(results):
        color = f"C{i}"
        xs = [level.concurrency for level in result.levels]
        throughput.plot(
            xs,
            [level.throughput for level in result.levels],
            "o-",
            color=color,
            label=f"{result.store}: intake POST",
        )
        if result.bare_save_rate > 0:
            throughput.axhline(
                result.bare_save_rate,
                color=color,
                linestyle="--",
                label=f"{result.store}: bare eventsourcing save",
            )
        tail.plot(
            xs, [level.p99_ms for level in result.levels], "o-", color=color, label=result.store
        )
    for axes in (throughput, tail):
        if len(levels) > 1 and min(levels) > 0:
            axes.set_xscale("log", base=2)
            axes.xaxis.set_major_formatter(ScalarFormatter())
            axes.xaxis.set_minor_formatter(NullFormatter())
        if levels:
            axes.set_xticks(levels)
        axes.set_xlabel("concurrent clients")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    throughput.set_ylabel("requests (saves) per second")
    throughput.set_title("Throughput")
    tail.set_ylabel("p99 latency, ms")
    tail.set_title("p99 latency")
    figure.suptitle("intake POST /v1/refunds vs bare eventsourcing save rate")
    figure.savefig(path, dpi=110)
    return path


# -- CPU accounting from /proc ---------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is the state
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def processes_cpu_seconds(command: str) -> dict[int, float]:
    """CPU seconds of every process named `command` (e.g. the local PostgreSQL server's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.index("(") + 1 : stat.rindex(")")] == command:
                found[int(entry.name)] = process_cpu_seconds(int(entry.name))
        except (OSError, ValueError):  # the process ended meanwhile
            continue
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_percent(seconds: float) -> float:
    """How busy the machine is over the next `seconds` (100 = every core), before we load it."""
    busy, total = machine_ticks()
    time.sleep(seconds)
    busy_after, total_after = machine_ticks()
    return 100 * (busy_after - busy) / max(1, total_after - total)


@dataclass
class CpuSnapshot:
    intake: float
    client: float
    db: dict[int, float]
    machine: tuple[int, int]

    @classmethod
    def take(cls, intake_pid: int, db_command: str | None) -> CpuSnapshot:
        return cls(
            intake=process_cpu_seconds(intake_pid),
            client=time.process_time(),
            db=processes_cpu_seconds(db_command) if db_command else {},
            machine=machine_ticks(),
        )


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


# -- the intake process --------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class IntakeProcess:
    """`python -m services.intake` in its own session; stopped with SIGTERM on exit."""

    def __init__(self, store_env: dict[str, str], log_path: Path, source: Path = REPO) -> None:
        self.source = source
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REFUNDS_", "POSTGRES_", "SQLITE_", "PERSISTENCE_"))
        }
        self.env = (
            env
            | store_env
            | {
                "REFUNDS_ENV": "test",
                "REFUNDS_HOST": "127.0.0.1",
                "REFUNDS_PORT": str(self.port),
                "REFUNDS_RELAY_ENABLED": "false",
                "REFUNDS_CONSUMER_ENABLED": "false",
                "REFUNDS_API_KEYS": f"{TENANT}:{API_KEY}",
                "REFUNDS_LOG_LEVEL": "WARNING",
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> IntakeProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.intake"],
                cwd=self.source,  # `-m` puts it first on sys.path, before the editable install
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops intake
            )
        try:
            self._wait_healthy(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_healthy(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"intake exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"intake did not answer /healthz in {timeout} s:\n{self.log_tail()}")

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
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# -- stores --------------------------------------------------------------------------------------


@dataclass
class StoreTarget:
    """One store: the environment intake gets, and the eventsourcing env of the baseline."""

    name: str
    intake_env: dict[str, str]
    database_url: str | None = None
    schemas: list[str] = field(default_factory=list)  # dropped by cleanup()
    data_dir: Path | None = None
    baseline_schema: str | None = None  # PostgreSQL: where the bare save baseline writes

    @classmethod
    def sqlite(cls, folder: Path) -> StoreTarget:
        return cls("sqlite", {"REFUNDS_DATA_DIR": str(folder)}, data_dir=folder)

    @classmethod
    def postgres(cls, url: str) -> StoreTarget:
        suffix = uuid.uuid4().hex[:10]
        intake_schema = f"bench_intake_{suffix}"
        baseline_schema = f"bench_baseline_{suffix}"
        return cls(
            "postgres",
            {"REFUNDS_DATABASE_URL": url, "REFUNDS_DATABASE_SCHEMA": intake_schema},
            database_url=url,
            schemas=[intake_schema, baseline_schema],
            baseline_schema=baseline_schema,
        )

    @property
    def db_command(self) -> str | None:
        """The server processes whose CPU counts as the store's (a local PostgreSQL)."""
        if self.database_url is None:
            return None
        host = httpx.URL(self.database_url).host
        return "postgres" if host in {"127.0.0.1", "localhost", "::1", ""} else None

    def baseline_env(self) -> dict[str, str]:
        """The same eventsourcing settings intake derives for itself (shared.store.store_env)."""
        from shared.settings import ServiceSettings
        from shared.store import store_env

        # Every field that picks the store is given, so no REFUNDS_* variable of this process
        # leaks in (model_validate rather than the constructor only for mypy's sake).
        if self.database_url is None:
            settings = ServiceSettings.model_validate(
                {"data_dir": self.data_dir, "database_url": None}
            )
        else:
            settings = ServiceSettings.model_validate(
                {"database_url": self.database_url, "database_schema": self.baseline_schema}
            )
        return store_env(settings, "bench_baseline")

    def cleanup(self) -> None:
        if self.database_url is None or not self.schemas:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            for schema in self.schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


# -- the load ------------------------------------------------------------------------------------


async def run_level(
    url: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    ids: Iterator[int],
    run_id: str,
    intake_pid: int,
    db_command: str | None,
    clients: int = 1,
) -> LevelResult:
    """`concurrency` workers post back to back; what completes inside the window is measured.

    The workers share `clients` keep-alive httpx clients (connections split evenly).
    """
    clients = max(1, min(clients, concurrency))
    per_client = math.ceil(concurrency / clients)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sample: list[str] = []
    start = time.perf_counter()
    window_start = start + warmup
    window_end = window_start + seconds
    snapshots: list[CpuSnapshot] = []

    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=60)
            )
            for _ in range(clients)
        ]

        async def worker(client: httpx.AsyncClient) -> None:
            while (sent := time.perf_counter()) < window_end:
                n = next(ids)
                content = json.dumps(refund_body(n), separators=(",", ":")).encode()
                try:
                    response = await client.post(
                        "/v1/refunds",
                        content=content,
                        headers={"Idempotency-Key": f"bench-{run_id}-{n}"},
                    )
                    kind = None if response.status_code == 201 else str(response.status_code)
                    detail = response.text[:300]
                except httpx.HTTPError as error:
                    kind, detail = type(error).__name__, str(error)[:300]
                done = time.perf_counter()
                if not window_start <= done < window_end:
                    continue
                if kind is None:
                    latencies.append(done - sent)
                else:
                    errors[kind] += 1
                    if not sample:
                        sample.append(f"{kind}: {detail}")

        async def sampler() -> None:
            for moment in (window_start, window_end):
                await asyncio.sleep(max(0.0, moment - time.perf_counter()))
                snapshots.append(CpuSnapshot.take(intake_pid, db_command))

        await asyncio.gather(sampler(), *(worker(pool[i % clients]) for i in range(concurrency)))

    before, after = snapshots
    handled = max(1, len(latencies) + sum(errors.values()))
    db_ms = None
    db_seconds = 0.0
    if db_command:
        db_seconds = sum(cpu - before.db.get(pid, 0.0) for pid, cpu in after.db.items())
        db_ms = db_seconds * 1000 / handled
    intake_seconds = after.intake - before.intake
    client_seconds = after.client - before.client
    busy = after.machine[0] - before.machine[0]
    total = max(1, after.machine[1] - before.machine[1])
    ours = (intake_seconds + client_seconds + db_seconds) * CLOCK_TICKS
    p50, p95, p99 = (v * 1000 for v in percentiles(latencies, [50, 95, 99]))
    return LevelResult(
        concurrency=concurrency,
        seconds=seconds,
        requests=len(latencies),
        errors=sum(errors.values()),
        throughput=len(latencies) / seconds,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=sum(latencies) * 1000 / len(latencies) if latencies else math.nan,
        max_ms=max(latencies) * 1000 if latencies else math.nan,
        intake_cpu_ms_per_request=intake_seconds * 1000 / handled,
        db_cpu_ms_per_request=db_ms,
        client_cpu_ms_per_request=client_seconds * 1000 / handled,
        machine_busy_percent=100 * busy / total,
        other_busy_percent=max(0.0, 100 * (busy - ours) / total),
        error_kinds=dict(errors),
        error_sample=sample[0] if sample else None,
    )


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
