"""The end-to-end benchmark's results and how they are shown: the throughput table, the
cost table (net CPU-ms per refund per role), the idle cost, a markdown table for the
README's "Figures", JSON and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.e2e_cpu import OURS, ROLES, SANDBOXES
from bench.intake_create import BareRate
from bench.intake_create_report import _finite
from bench.kafka_baseline import KafkaRate

STAGES = ("request→decision", "decision→paid", "paid→told", "request→told")
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# The cost table's columns: our services, their sum, the rest of the stack, its total, then
# what is not the stack (the load generator, the database server).
COST_COLUMNS = (*OURS, "our four", "console", *SANDBOXES, "broker", "dev", "other", "stack")
COST_COLUMNS += ("loadgen", "db")
QUIET_ROLES = ("dev", "other")  # shown only when they cost something


@dataclass
class Point:
    """One history size: the stack (re)started on its store, settled, its idle cost measured."""

    history: int | None  # refunds asked for (--history); None: what the warm-up left
    refunds_stored: int  # intake's refunds when the levels began
    events_stored: dict[str, int]  # per service
    idle_ms_per_s: dict[str, float]  # per role, with "our four" and "stack"
    settle_seconds: float = 0.0
    settled: bool = True
    seeded: int = 0  # refunds added by bench.history.seed_history before the start
    seed_seconds: float = 0.0
    # POST→paid of the first refund offered to the stack at rest (its consumers' fetches at
    # their longest wait), and of the slowest of the few offered with it to wake it up.
    after_rest_ms: tuple[float | None, float | None] = (None, None)


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
    cpu_ms_per_refund: float  # the stack's processes, net of idle
    db_cpu_ms_per_refund: float | None = None  # local PostgreSQL server, net of idle
    counted: int = 0  # refunds whose events and messages were counted
    events_per_refund: float | None = None  # ledger entries in the four stores
    messages_per_refund: float | None = None  # records published to Kafka
    deliveries_per_refund: float | None = None  # records consumed: each message * its groups
    save_share: float | None = None  # events/refund * paid/s ÷ bare save rate
    kafka_share: float | None = None  # deliveries/refund * paid/s ÷ bare produce→consume rate
    history: int | None = None  # the history point's --history value
    refunds_stored: int = 0  # intake's refunds stored when the level began
    events_stored: dict[str, int] = field(default_factory=dict)  # per service, at the start
    wall_seconds: float = 0.0  # the level's measured span (first POST to last refund done)
    cpu_ms_by_role: dict[str, float] = field(default_factory=dict)  # net, with the totals


@dataclass
class StoreRun:
    store: str
    method: str = "bank_transfer"
    save: BareRate | None = None
    kafka: KafkaRate | None = None
    consumers: dict[str, list[str]] = field(default_factory=dict)  # topic → consuming services
    points: list[Point] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)


def sandboxes_and_broker(per_role: dict[str, float]) -> float:
    return sum(per_role.get(role, 0.0) for role in (*SANDBOXES, "broker"))


def max_paid_rate(levels: Sequence[Level]) -> float:
    return max((level.paid_rate for level in levels), default=0.0)


# -- text tables -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def _per(value: float | None) -> str:
    # + 0.0 turns a -0.0 (a role whose net cost rounds to nothing) into 0.0
    return "-" if value is None else f"{round(value, 1) + 0.0:.1f}"


def _aligned(rows: list[list[str]]) -> list[str]:
    """Right-aligned columns, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


COLUMNS = (
    "history",
    "gw ms",
    "offered/s",
    "paid",
    "paid/s",
    "POST→paid p50/p95/p99 ms",
    *(f"{stage} p50/p99 ms" for stage in STAGES),
    "net CPU-ms/refund",
    "db CPU-ms/refund",
    "events/refund",
    "% save rate",
    "msgs/refund pub/del",
    "% kafka rate",
)


def format_rows(levels: list[Level]) -> list[str]:
    """The throughput table: header, rule and one row per level."""
    rows = [list(COLUMNS)]
    for level in levels:
        post = level.post_to_paid_ms
        rows.append(
            [
                f"{level.refunds_stored:,}",
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
                _per(level.db_cpu_ms_per_refund),
                _per(level.events_per_refund),
                _pct(level.save_share),
                f"{_per(level.messages_per_refund)} / {_per(level.deliveries_per_refund)}",
                _pct(level.kafka_share),
            ]
        )
    return _aligned(rows)


def relative_cost(per_role: dict[str, float]) -> float | None:
    """Our four's CPU per refund over the load generator's in the same level: the machine's
    speed, which swings between runs minutes apart, scales both alike, so runs of two builds
    compare by this (at equal rates) where the absolute figures drown in that swing. None
    without a load generator's cost."""
    reference = per_role.get("loadgen", 0.0)
    ours = per_role.get("our four")
    if ours is None or reference <= 0.0:
        return None
    return ours / reference


def cost_columns(levels: Sequence[Level]) -> list[str]:
    """COST_COLUMNS, less the roles that cost nothing anywhere (the supervisor, strays)."""
    return [
        column
        for column in COST_COLUMNS
        if column not in QUIET_ROLES
        or any(abs(level.cpu_ms_by_role.get(column, 0.0)) >= 0.05 for level in levels)
    ]


def format_cost_rows(levels: list[Level]) -> list[str]:
    """Net CPU-ms per refund per role: one row per level."""
    columns = cost_columns(levels)
    rows = [["history", "events stored", "gw ms", "offered/s", "paid/s", *columns, "÷ loadgen"]]
    for level in levels:
        by_role = level.cpu_ms_by_role
        relative = relative_cost(by_role)
        rows.append(
            [
                f"{level.refunds_stored:,}",
                f"{sum(level.events_stored.values()):,}",
                str(level.gateway_delay_ms),
                f"{level.offered_rate:g}",
                f"{level.paid_rate:.1f}",
                *(_per(by_role.get(c)) if by_role else "-" for c in columns),
                "-" if relative is None else f"{relative:.2f}",
            ]
        )
    return _aligned(rows)


def format_point(point: Point) -> str:
    """The history size a point ran at and its idle cost, per role."""
    events = ", ".join(f"{s} {n:,}" for s, n in point.events_stored.items())
    asked = "as left by the warm-up" if point.history is None else f"--history {point.history:,}"
    seeded = f", {point.seeded:,} seeded in {point.seed_seconds:.0f} s" if point.seeded else ""
    wait = "settled" if point.settled else "NOT settled (bound reached)"
    idle = point.idle_ms_per_s
    roles = ", ".join(
        f"{role} {idle[role]:.1f}" for role in ROLES if abs(idle.get(role, 0.0)) >= 0.05
    )
    first, slowest = point.after_rest_ms
    woken = (
        ""
        if first is None
        else f"\nafter rest: the first refund {first:,.0f} ms POST→paid, the slowest of the "
        f"wake-up {slowest or 0:,.0f} ms (the levels start on the woken stack)"
    )
    return (
        f"history ({asked}{seeded}): {point.refunds_stored:,} refunds stored; events stored: "
        f"{events}\n"
        f"idle (once the stack was quiet: {wait} in {point.settle_seconds:.0f} s): stack "
        f"{idle.get('stack', 0.0):.1f} CPU-ms/s, our four {idle.get('our four', 0.0):.1f} — "
        f"{roles}{woken}"
    )


def format_table(result: StoreRun) -> str:
    name = f"{result.store}, method {result.method}"
    lines = [f"end to end, POST → paid — {name}", *format_rows(result.levels)]
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
    lines += ["", f"net CPU-ms per refund, by process — {name}", *format_cost_rows(result.levels)]
    lines += [format_point(point) for point in result.points]
    return "\n".join(lines)


# -- markdown for the README -----------------------------------------------------------------------

MARKDOWN_COLUMNS = (
    "store",
    "history (refunds)",
    "gateway",
    "offered/s",
    "paid/s",
    "POST→paid p50 / p99",
    *OURS,
    "our four",
    "sandboxes + broker",
    "db server",
    "idle stack CPU-ms/s",
)


def markdown(results: list[StoreRun]) -> str:
    """A table to paste into the README's "Figures": net CPU-ms per refund per service."""
    lines = [
        "| " + " | ".join(MARKDOWN_COLUMNS) + " |",
        "|" + "---|" * 2 + "---:|" * (len(MARKDOWN_COLUMNS) - 2),
    ]
    best: list[str] = []
    for result in results:
        name = NAMES.get(result.store, result.store)
        idle = {point.history: point.idle_ms_per_s.get("stack") for point in result.points}
        for level in result.levels:
            by_role = level.cpu_ms_by_role
            post = level.post_to_paid_ms
            cells = [
                name,
                f"{level.refunds_stored:,}",
                f"+{level.gateway_delay_ms} ms",
                f"{level.offered_rate:g}",
                f"{level.paid_rate:.1f}",
                f"{_ms(post['p50'])} / {_ms(post['p99'])} ms",
                *(_per(by_role.get(role)) if by_role else "-" for role in OURS),
                _per(by_role.get("our four")) if by_role else "-",
                _per(sandboxes_and_broker(by_role)) if by_role else "-",
                _per(level.db_cpu_ms_per_refund),
                _per(idle.get(level.history)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        for history in dict.fromkeys(level.history for level in result.levels):
            chosen = [level for level in result.levels if level.history == history]
            top = max(chosen, key=lambda level: level.paid_rate)
            best.append(
                f"{name}, {top.refunds_stored:,} refunds stored: highest {top.paid_rate:.1f} "
                f"paid/s (offered {top.offered_rate:g}/s, gateway +{top.gateway_delay_ms} ms)"
            )
    methods = ", ".join(sorted({result.method for result in results}))
    notes = [
        "",
        f"Net CPU-ms per refund (CPU during the level − idle rate × its wall time, ÷ refunds "
        f"paid); payment method {methods}. Max throughput: " + "; ".join(best) + ".",
    ]
    return "\n".join(lines + notes) + "\n"


# -- files -----------------------------------------------------------------------------------------


def write_json(results: list[StoreRun], meta: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "e2e", **meta, "stores": [asdict(result) for result in results]}
    path.write_text(json.dumps(_finite(document), indent=2) + "\n")
    return path


def write_markdown(results: list[StoreRun], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results))
    return path


PLOTTED = (*OURS, "sandboxes + broker", "db")
SHARES = (("save_share", "-", "save"), ("kafka_share", "--", "kafka"))


def _plotted(level: Level, what: str) -> float | None:
    by_role = level.cpu_ms_by_role
    if not by_role:
        return None
    if what == "sandboxes + broker":
        return sandboxes_and_broker(by_role)
    if what == "db":
        return level.db_cpu_ms_per_refund
    return by_role.get(what)


def write_plot(results: list[StoreRun], path: Path) -> Path:
    """Top: throughput, POST→paid p99 and the baselines' shares against the offered rate.
    Bottom: net CPU-ms per refund per service against the offered rate (one panel per store)
    and against the history size (at the lowest offered rate and gateway delay)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(15, 9), layout="constrained")
    FigureCanvasAgg(figure)
    (rate_axes, latency_axes, share_axes), bottom = figure.subplots(2, 3)
    markers = "osD^v"
    top = 0.0
    for i, result in enumerate(results):
        color = f"C{i}"
        # One line per history point and gateway delay (refunds accumulate level by level:
        # a point is labelled with what was stored when its first level began).
        series = dict.fromkeys((level.history, level.gateway_delay_ms) for level in result.levels)
        for j, (history, delay) in enumerate(series):
            chosen = [
                level
                for level in result.levels
                if (level.history, level.gateway_delay_ms) == (history, delay)
            ]
            stored = chosen[0].refunds_stored
            offered = [level.offered_rate for level in chosen]
            top = max([top, *offered])
            label = f"{result.store}, {stored:,} stored, gateway +{delay} ms"
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
            if i < 2:
                for k, what in enumerate(PLOTTED):
                    values = [_plotted(level, what) for level in chosen]
                    if all(value is None for value in values):
                        continue  # the database server on SQLite
                    bottom[i].plot(
                        offered,
                        values,
                        color=f"C{k}",
                        marker=markers[j % len(markers)],
                        linestyle=("-", "--", ":", "-.")[j % 4],
                        label=f"{what} ({stored:,}, +{delay} ms)",
                    )
        if i < 2:
            bottom[i].set(
                xlabel="offered refunds/s",
                ylabel="net CPU-ms per refund",
                title=f"{result.store}: CPU per refund by service",
            )
    rate_axes.plot([0, top], [0, top], color="grey", linestyle=":", label="offered")
    rate_axes.set(xlabel="offered refunds/s", ylabel="refunds paid/s", title="Throughput")
    latency_axes.set(xlabel="offered refunds/s", ylabel="ms", title="POST → paid p99")
    share_axes.set(
        xlabel="offered refunds/s",
        ylabel="% of the baseline's rate",
        title="events/s vs bare save rate (—), deliveries/s vs bare Kafka (--)",
    )
    if len(results) < 2:
        bottom[1].set_visible(False)
    _history_panel(bottom[2], results)
    for axes in (rate_axes, latency_axes, share_axes, *bottom):
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
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


def _history_panel(axes: Any, results: list[StoreRun]) -> None:
    """CPU per refund per service against refunds stored, at one rate and gateway delay."""
    axes.set(
        xlabel="refunds stored",
        ylabel="net CPU-ms per refund",
        title="CPU per refund vs history (lowest rate and delay)",
    )
    for i, result in enumerate(results):
        if len({level.history for level in result.levels}) < 2:
            continue
        rate = min(level.offered_rate for level in result.levels)
        delay = min(level.gateway_delay_ms for level in result.levels)
        chosen = sorted(
            (
                lvl
                for lvl in result.levels
                if (lvl.offered_rate, lvl.gateway_delay_ms) == (rate, delay)
            ),
            key=lambda level: level.refunds_stored,
        )
        stored = [level.refunds_stored for level in chosen]
        for k, what in enumerate(PLOTTED):
            values = [_plotted(level, what) for level in chosen]
            if all(value is None for value in values):
                continue
            axes.plot(
                stored,
                values,
                color=f"C{k}",
                marker="osD^v"[i],
                linestyle=("-", "--")[i],
                label=f"{result.store}: {what} at {rate:g}/s",
            )
    if axes.get_legend_handles_labels()[0]:
        axes.set_xscale("log")
    else:
        axes.text(
            0.5, 0.5, "one history size only (--history N,M)", ha="center", transform=axes.transAxes
        )
