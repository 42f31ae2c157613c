"""console_queue's results and how they are shown: one page's timing against one server, the
table (with each store's idle CPU and the first page's verdict against issue 17's goal) and the
PNG plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

GOAL_MS = 300.0  # issue 17: the first page under 300 ms with 10,000 open cases


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
