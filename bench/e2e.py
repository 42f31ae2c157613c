"""End-to-end benchmark: refunds per second from `POST` to `paid`, with each stage's latency.

    .venv/bin/python -m bench.e2e [--rates 10,20,40,80] [--seconds 20]
        [--gateway-delay-ms 0,200] [--out bench/results]

Starts the README's stack (`refunds dev`, SQLite, free ports, a throw-away folder)
and offers auto-approved refunds at each rate from another process's point of view
(bench/loadgen.py, open loop, following each refund to `paid`). Per level it reports
the rate of refunds reaching `paid`, POST→paid p50/p95/p99, and each stage's
p50/p95/p99 from the events' own timestamps in the four ledgers: request (intake) →
decision (review) → paid (payout) → customer told (notify's paid e-mail); and the
stack's CPU-ms per refund (all its processes, from /proc). The gateway answers at
once, or `--gateway-delay-ms` later (a provider's realistic answer time).

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
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.loadgen import Settings, percentile, run
from refunds.devstack import Ports
from refunds.stores import Stores, open_service
from shared.auth import DEV_API_KEY
from shared.ledger import Ledger, data_of

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAGES = ("request→decision", "decision→paid", "paid→told", "request→told")


@dataclass
class Level:
    gateway_delay_ms: int
    offered_rate: float
    refunds: int
    paid: int
    paid_rate: float  # refunds reaching paid per second, over the level's span
    post_to_paid_ms: dict[str, float | None]
    stages_ms: dict[str, dict[str, float | None]]
    cpu_ms_per_refund: float


# -- the stack -------------------------------------------------------------------------------------


@contextmanager
def stack(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], Ports]]:
    base = Ports.free_base(30000 + os.getpid() % 100 * 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    cli = Path(sys.executable).with_name("refunds")
    process = subprocess.Popen(
        [str(cli), "dev", "--data-dir", str(data_dir), "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "Ctrl-C to stop" in line:
                break
            if not line and process.poll() is not None:
                raise RuntimeError("refunds dev did not start")
        yield process, Ports.from_base(base)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


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


# -- stages from the ledgers ----------------------------------------------------------------------


def stage_times(data_dir: Path, refund_ids: set[str]) -> dict[str, dict[str, datetime]]:
    """For each refund: when it was requested, decided, paid and the customer told."""
    wanted = {
        "intake": {"RefundRequest.Requested": "request"},
        "review": {"ReviewCase.Approved": "decision"},
        "payout": {"Payout.Succeeded": "paid"},
        "notify": {"Correspondence.MessageSent": "told"},
    }
    times: dict[str, dict[str, datetime]] = defaultdict(dict)
    stores = Stores(data_dir, None, None)
    for service, types in wanted.items():
        with open_service(stores, service) as app:
            ledger = Ledger(app)
            ledger.seal()
            entries = [
                e for e in ledger.all_entries() if e.type in types and e.correlation in refund_ids
            ]
            stored = ledger.stored([e.position for e in entries]) if service == "notify" else {}
            for entry in entries:
                if service == "notify":
                    data = data_of(stored[entry.position])
                    if (data.get("step"), data.get("channel")) != ("paid", "email"):
                        continue
                moment = types[entry.type]
                at = datetime.fromisoformat(entry.at)
                times[str(entry.correlation)].setdefault(moment, at)
    return times


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


# -- one level ------------------------------------------------------------------------------------


def run_level(
    process: subprocess.Popen[str],
    ports: Ports,
    data_dir: Path,
    rate: float,
    seconds: float,
    gateway_delay_ms: int,
) -> Level:
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
    pids = descendants(process.pid)
    cpu_before = cpu_seconds(pids)
    outcomes, _, _, _ = asyncio.run(
        run(
            f"http://127.0.0.1:{ports.intake}",
            DEV_API_KEY,
            settings,
            {"auto": 100, "reject": 0, "manual": 0},
        )
    )
    cpu = cpu_seconds(pids) - cpu_before
    paid = [o for o in outcomes if o.final == "paid" and o.final_ms is not None]
    # Each outcome's times count from its own scheduled start: put them on one clock.
    scheduled = [o.answered_at - (o.post_ms or 0) / 1000 for o in outcomes]
    paid_at = [o.answered_at - (o.post_ms or 0) / 1000 + (o.final_ms or 0) / 1000 for o in paid]
    span = max(paid_at) - min(scheduled) if paid else 0.0
    refund_ids = {o.refund_id for o in paid if o.refund_id}
    times = stage_times(data_dir, refund_ids)
    return Level(
        gateway_delay_ms=gateway_delay_ms,
        offered_rate=rate,
        refunds=len(outcomes),
        paid=len(paid),
        paid_rate=len(paid) / span if span else 0.0,
        post_to_paid_ms={
            f"p{p}": percentile([o.final_ms or 0 for o in paid], p) for p in (50, 95, 99)
        },
        stages_ms=stage_percentiles(times),
        cpu_ms_per_refund=cpu * 1000 / len(paid) if paid else 0.0,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def format_table(levels: list[Level]) -> str:
    head = (
        f"{'gw ms':>5} {'offered/s':>9} {'paid':>6} {'paid/s':>7} {'POST→paid p50/p95/p99 ms':>26} "
        + " ".join(f"{stage + ' p50/p99':>24}" for stage in STAGES)
        + f" {'CPU-ms/refund':>13}"
    )
    lines = [head]
    for level in levels:
        post = level.post_to_paid_ms
        stages = " ".join(
            f"{_ms(level.stages_ms[s]['p50']) + ' / ' + _ms(level.stages_ms[s]['p99']):>24}"
            for s in STAGES
        )
        lines.append(
            f"{level.gateway_delay_ms:>5} {level.offered_rate:>9g} {level.paid:>6} "
            f"{level.paid_rate:>7.1f} "
            f"{_ms(post['p50']) + ' / ' + _ms(post['p95']) + ' / ' + _ms(post['p99']):>26} "
            f"{stages} {level.cpu_ms_per_refund:>13.1f}"
        )
    return "\n".join(lines)


def write_plot(levels: list[Level], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(figure)
    rate_axes, latency_axes = figure.subplots(1, 2)
    for delay in sorted({level.gateway_delay_ms for level in levels}):
        chosen = [level for level in levels if level.gateway_delay_ms == delay]
        offered = [level.offered_rate for level in chosen]
        label = f"gateway +{delay} ms"
        rate_axes.plot(offered, [level.paid_rate for level in chosen], marker="o", label=label)
        p99 = [level.post_to_paid_ms["p99"] or 0 for level in chosen]
        latency_axes.plot(offered, p99, marker="o", label=label)
    top = max(level.offered_rate for level in levels)
    rate_axes.plot([0, top], [0, top], color="grey", linestyle=":", label="offered")
    rate_axes.set(xlabel="offered refunds/s", ylabel="refunds paid/s", title="Throughput")
    latency_axes.set(xlabel="offered refunds/s", ylabel="ms", title="POST → paid p99")
    rate_axes.legend()
    latency_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e", description=__doc__.split("\n\n")[0]
    )
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
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    levels: list[Level] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-e2e-") as folder,
        stack(Path(folder)) as (process, ports),
    ):
        for delay in args.gateway_delay_ms:
            for rate in args.rates:
                print(f"gateway +{delay:g} ms, offering {rate:g} refunds/s…", file=sys.stderr)
                levels.append(
                    run_level(process, ports, Path(folder), rate, args.seconds, int(delay))
                )
                print(format_table(levels[-1:]).splitlines()[-1], file=sys.stderr)
    print(format_table(levels))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "at": stamp, "store": "sqlite"}
    (args.out / f"e2e-{stamp}.json").write_text(
        json.dumps({"meta": meta, "levels": [asdict(level) for level in levels]}, indent=2)
    )
    print(f"plot: {write_plot(levels, args.out / f'e2e-{stamp}.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
