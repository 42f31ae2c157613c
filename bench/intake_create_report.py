"""intake_create's results and how they are shown: one level's and one store's figures, the
ratio to the bare save rate against the goal, percentiles, the aligned table, JSON and the PNG
plot. Pure: nothing here starts a process or reads /proc."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GOAL = 0.70  # issue 3: intake's best throughput against the bare save rate


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
