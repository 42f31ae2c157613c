"""bench/e2e*.py's pure parts: per-process CPU net of idle, roles by command line, the history
points, the tables, markdown, JSON and plot (no timing assertions)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import types
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import e2e
from bench.e2e_args import setting
from bench.e2e_cpu import (
    OURS,
    Sample,
    Settled,
    idle_rates,
    net_per_refund,
    role_of,
    wait_settled,
    with_totals,
)
from bench.e2e_facts import (
    MOMENTS,
    consumed_topics,
    counted_refunds,
    deliveries,
    mean_per_refund,
    share,
)
from bench.e2e_report import (
    STAGES,
    Level,
    Point,
    StoreRun,
    format_point,
    format_table,
    markdown,
    max_paid_rate,
    relative_cost,
    write_json,
    write_markdown,
    write_plot,
)
from bench.intake_create import BareRate
from bench.kafka_baseline import KafkaRate
from bench.loadgen import refund_body
from refunds.stores import Stores

# -- roles and CPU net of idle ---------------------------------------------------------------------

PY = "/work/.venv/bin/python3"


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        ([PY, "-m", "services.notify"], "notify"),
        ([PY, "-m", "services.console"], "console"),
        ([PY, "-m", "sandbox.mailsink"], "mailsink"),
        ([PY, "-m", "sandbox.alipay", "--host", "127.0.0.1", "--port", "8070"], "alipay"),
        (["/x/tansu", "broker", "--listener-url", "tcp://127.0.0.1:9092"], "broker"),
        ([PY, "/x/.venv/bin/refunds", "dev", "--data-dir", "d"], "dev"),
        ([PY, "-m", "services.shared_thing"], "other"),
        ([PY, "-m"], "other"),
        ([], "other"),
    ],
)
def test_a_process_role_comes_from_its_command_line(argv: list[str], role: str) -> None:
    assert role_of(argv) == role


def sample(at: float, **cpu: tuple[str, float]) -> Sample:
    """pids as p<pid>=(role, seconds)."""
    return Sample(at, {int(pid[1:]): value for pid, value in cpu.items()})


def test_replicas_are_summed_and_new_processes_count_whole() -> None:
    before = sample(0.0, p1=("intake", 1.0), p2=("intake", 2.0), p3=("db", 5.0))
    after = sample(
        10.0,
        p1=("intake", 1.5),  # +500 ms
        p2=("intake", 2.25),  # +250 ms, a second replica
        p3=("db", 5.1),  # +100 ms
        p4=("notify", 0.3),  # started since: all of its 300 ms
    )
    used = after.ms_since(before)
    assert used == pytest.approx({"intake": 750.0, "db": 100.0, "notify": 300.0})
    assert idle_rates(before, after) == pytest.approx({"intake": 75.0, "db": 10.0, "notify": 30.0})
    with pytest.raises(ValueError):
        idle_rates(after, after)


def test_net_cpu_per_refund_subtracts_the_idle_rate_over_the_level() -> None:
    used = {"notify": 5_000.0, "intake": 1_200.0, "mailsink": 100.0}
    idle = {"notify": 50.0, "intake": 10.0, "review": 2.0}  # CPU-ms per second
    net = net_per_refund(used, idle, wall=20.0, paid=200)
    assert net is not None
    assert net["notify"] == pytest.approx((5_000 - 50 * 20) / 200)  # 20.0
    assert net["intake"] == pytest.approx((1_200 - 10 * 20) / 200)  # 5.0
    assert net["mailsink"] == pytest.approx(0.5)  # no idle cost known: gross
    assert net["review"] == pytest.approx(-0.2)  # idle noisier than work: shown, not hidden
    assert net_per_refund(used, idle, wall=20.0, paid=0) is None


def test_totals_add_our_four_and_the_stack_without_loadgen_and_db() -> None:
    per_role = dict.fromkeys(OURS, 10.0) | {"mailsink": 3.0, "broker": 2.0}
    per_role |= {"loadgen": 7.0, "db": 11.0}
    totals = with_totals(per_role)
    assert totals["our four"] == pytest.approx(40.0)
    assert totals["stack"] == pytest.approx(45.0)
    assert totals["db"] == 11.0 and totals["loadgen"] == 7.0


def test_a_real_sample_sees_this_process_as_the_load_generator() -> None:
    taken = Sample.take(os.getpid(), None)  # no stack below us: this process only
    assert taken.cpu[os.getpid()][0] == "loadgen"


def test_the_stack_is_settled_after_three_quiet_seconds() -> None:
    # Our four use 500, 400, then 20 CPU-ms per second; the broker is busy but not ours.
    rates = iter([500.0, 400.0, 20.0, 20.0, 20.0, 20.0, 20.0])
    clock = {"at": 0.0, "cpu": 0.0, "broker": 0.0}

    def fake_sample() -> Sample:
        return sample(clock["at"], p1=("notify", clock["cpu"]), p2=("broker", clock["broker"]))

    def sleep(seconds: float) -> None:
        clock["at"] += seconds
        clock["cpu"] += next(rates) * seconds / 1000
        clock["broker"] += seconds  # 1,000 CPU-ms/s: ignored

    settled = wait_settled(fake_sample, threshold_ms_per_s=100, sleep=sleep)
    assert settled == Settled(seconds=5.0, settled=True, last_ms_per_s=pytest.approx(20.0))


def test_waiting_for_quiet_is_bounded() -> None:
    clock = {"at": 0.0}

    def fake_sample() -> Sample:
        return sample(clock["at"], p1=("payout", clock["at"]))  # 1,000 CPU-ms/s forever

    def sleep(seconds: float) -> None:
        clock["at"] += seconds

    settled = wait_settled(fake_sample, threshold_ms_per_s=100, timeout=4, sleep=sleep)
    assert not settled.settled and settled.seconds == 4.0
    assert settled.last_ms_per_s == pytest.approx(1000.0)


# -- history points --------------------------------------------------------------------------------


def test_history_sizes_parse_ascending() -> None:
    args = e2e.build_parser().parse_args(["--history", "100k,1000"])
    assert args.history == [1000, 100_000]
    assert e2e.build_parser().parse_args([]).history is None
    with pytest.raises(SystemExit):
        e2e.build_parser().parse_args(["--history", "lots"])


def test_history_is_filled_by_the_seeder_with_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Stores, int]] = []

    def seed_history(stores: Stores, refunds: int, *, progress: Any = None) -> None:
        calls.append((stores, refunds))
        if progress is not None:  # each batch's size, as bench/history tells it
            progress(refunds - 500)
            progress(500)

    fake = types.ModuleType("bench.history")
    fake.seed_history = seed_history  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.history", fake)
    stores = Stores(Path("/tmp/nowhere"), None, None)
    seeded, seconds = e2e.fill_history(stores, 100_000, 1_015)
    assert calls == [(stores, 98_985)] and seeded == 98_985 and seconds >= 0
    assert "seeded 98,985 of 98,985" in capsys.readouterr().err
    assert e2e.fill_history(stores, 1_000, 1_015) == (0, 0.0)  # enough stored already
    assert e2e.fill_history(stores, None, 0) == (0, 0.0)  # no --history
    assert len(calls) == 1


# -- the method --------------------------------------------------------------------------------


def test_the_method_reaches_the_body_and_defaults_to_the_gateway_route() -> None:
    assert e2e.build_parser().parse_args([]).method == "bank_transfer"
    args = e2e.build_parser().parse_args(["--method", "card"])
    assert args.method == "card"
    with pytest.raises(SystemExit):
        e2e.build_parser().parse_args(["--method", "cash"])
    body = refund_body("auto", "ORD-1", "C-1", "bank_transfer")
    assert body["order"]["payment"]["method"] == "bank_transfer"
    assert refund_body("auto", "ORD-1", "C-1")["order"]["payment"]["method"] == "alipay"


# -- the counts (pure) -----------------------------------------------------------------------------


def test_share_is_the_fraction_of_the_baseline_rate_used() -> None:
    assert share(30.0, 10.0, 600.0) == pytest.approx(0.5)  # 300 events/s of 600 saves/s
    assert share(8.0, 25.0, 100.0) == pytest.approx(2.0)  # the stack can beat one thread
    assert share(None, 10.0, 600.0) is None
    assert share(30.0, 10.0, None) is None
    assert share(30.0, 10.0, 0.0) is None


def test_mean_per_refund_counts_a_missing_refund_as_zero() -> None:
    assert mean_per_refund({"a": 30, "b": 20, "x": 99}, {"a", "b", "c"}) == pytest.approx(50 / 3)
    assert mean_per_refund({"a": 30}, set()) is None


def test_only_complete_refunds_are_counted_unless_none_is() -> None:
    at = datetime(2026, 11, 22, tzinfo=UTC)
    times = {
        "done": dict.fromkeys(MOMENTS, at),
        "untold": {"request": at, "decision": at, "paid": at},
    }
    assert counted_refunds(times, {"done", "untold", "unknown"}) == {"done"}
    assert counted_refunds({"untold": times["untold"]}, {"untold", "x"}) == {"untold", "x"}


def test_deliveries_multiply_each_topic_by_its_consumer_groups() -> None:
    consumers = {"t.intake": ["review", "payout", "notify"], "t.review": ["intake"]}
    by_topic = Counter({"t.intake": 2, "t.review": 3, "t.notify": 5})  # nobody reads t.notify
    assert deliveries(by_topic, consumers) == 2 * 3 + 3 * 1
    assert deliveries(Counter(), consumers) == 0


def test_consumed_topics_come_from_the_lag_gauge() -> None:
    text = "\n".join(
        [
            "# HELP refunds_consumer_lag_records Records behind the broker's high-water mark.",
            "# TYPE refunds_consumer_lag_records gauge",
            'refunds_consumer_lag_records{partition="0",topic="refunds.intake.v1"} 0.0',
            'refunds_consumer_lag_records{partition="1",topic="refunds.intake.v1"} 2.0',
            'refunds_consumer_lag_records{partition="0",topic="refunds.payout.v1"} 0.0',
            "# HELP refunds_relay_lag_events Events the relay has not yet published.",
            "# TYPE refunds_relay_lag_events gauge",
            'refunds_relay_lag_events{topic="refunds.review.v1"} 0.0',
            "",
        ]
    )
    assert consumed_topics(text) == {"refunds.intake.v1", "refunds.payout.v1"}
    assert consumed_topics("") == set()


# -- the report ------------------------------------------------------------------------------------

NET = {"intake": 5.0, "review": 2.0, "payout": 4.0, "notify": 9.0, "mailsink": 1.5}
NET |= {"gateway": 1.0, "broker": 2.5, "console": 0.0, "loadgen": 3.0, "db": 6.0}


def e2e_level(offered: float, paid_rate: float, **changes: object) -> Level:
    level = Level(
        store="postgres",
        gateway_delay_ms=0,
        offered_rate=offered,
        refunds=int(offered * 10),
        paid=int(paid_rate * 10),
        paid_rate=paid_rate,
        post_to_paid_ms={"p50": 300.0, "p95": 900.0, "p99": 1234.0},
        stages_ms={stage: {"p50": 40.0, "p95": 90.0, "p99": 110.0} for stage in STAGES},
        cpu_ms_per_refund=26.0,
        counted=int(paid_rate * 10),
        events_per_refund=30.0,
        messages_per_refund=12.0,
        deliveries_per_refund=8.0,
        save_share=share(30.0, paid_rate, 1000.0),
        kafka_share=share(8.0, paid_rate, 4000.0),
        history=None,
        refunds_stored=1_015,
        events_stored={"intake": 6_090, "review": 3_045, "payout": 5_000, "notify": 17_000},
        wall_seconds=10.0,
        cpu_ms_by_role=with_totals(NET),
    )
    for name, value in changes.items():
        setattr(level, name, value)
    return level


def e2e_run() -> StoreRun:
    idle = with_totals({"intake": 3.0, "notify": 12.0, "broker": 4.0, "db": 1.0})
    return StoreRun(
        "postgres",
        method="bank_transfer",
        save=BareRate(1000.0, 5000, 0.3, 0.5),
        kafka=KafkaRate(20_000, 800.0, 4, 5.0, 4000.0, 4100.0, 0.04),
        consumers={"refunds.intake.v1": ["review", "payout"], "refunds.review.v1": ["intake"]},
        points=[
            Point(None, 1_015, {"intake": 6_090, "notify": 17_000}, idle, 4.0, True),
        ],
        levels=[e2e_level(5, 5.0, db_cpu_ms_per_refund=6.0), e2e_level(20, 12.5)],
    )


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_e2e_table_is_aligned_and_shows_both_baselines() -> None:
    table = format_table(e2e_run())
    lines = table.splitlines()
    assert lines[0] == "end to end, POST → paid — postgres, method bank_transfer"
    header, rule, first, second = lines[1:5]
    assert len({len(header), len(rule), len(first), len(second)}) == 1
    assert cells(header)[:5] == ["history", "gw ms", "offered/s", "paid", "paid/s"]
    assert cells(first)[:6] == ["1,015", "0", "5", "50", "5.0", "300 / 900 / 1,234"]
    # 30 events * 5 refunds/s of 1,000 saves/s; 8 deliveries * 5 refunds/s of 4,000 msgs/s
    assert cells(first)[-6:] == ["26.0", "6.0", "30.0", "15.0", "12.0 / 8.0", "1.0"]
    assert cells(second)[-6:] == ["26.0", "-", "30.0", "37.5", "12.0 / 8.0", "2.5"]
    assert "bare eventsourcing save: 1,000.0 saves/s" in table
    assert "bare aiokafka produce→consume: 4,000 msgs/s" in table
    assert "refunds.intake.v1 → review, payout; refunds.review.v1 → intake" in table


def test_the_cost_table_has_a_column_per_role_and_the_totals() -> None:
    lines = format_table(e2e_run()).splitlines()
    at = lines.index("net CPU-ms per refund, by process — postgres, method bank_transfer")
    header, rule, first = lines[at + 1 : at + 4]
    assert len({len(header), len(rule), len(first)}) == 1
    names = cells(header)
    assert names[:5] == ["history", "events stored", "gw ms", "offered/s", "paid/s"]
    assert names[5:10] == ["intake", "review", "payout", "notify", "our four"]
    assert names[-4:] == ["stack", "loadgen", "db", "÷ loadgen"]
    assert "dev" not in names and "other" not in names  # nothing there: no column
    row = dict(zip(names, cells(first), strict=True))
    assert (row["history"], row["events stored"]) == ("1,015", "31,135")  # the four logs' ends
    assert row["our four"] == "20.0" and row["stack"] == "25.0"  # 20 + 1.5 + 1 + 2.5 + 0
    assert (row["mailsink"], row["broker"], row["db"], row["sms"]) == ("1.5", "2.5", "6.0", "-")
    assert row["÷ loadgen"] == "6.67"  # our four 20.0 over the load generator's 3.0


def test_the_relative_cost_is_our_four_over_the_load_generator() -> None:
    assert relative_cost({"our four": 28.0, "loadgen": 3.5}) == 8.0
    # Without the load generator's cost there is nothing to compare by.
    assert relative_cost({"our four": 28.0}) is None
    assert relative_cost({"our four": 28.0, "loadgen": 0.0}) is None
    assert relative_cost({"loadgen": 3.5}) is None


def test_the_history_and_idle_cost_are_printed() -> None:
    text = format_point(e2e_run().points[0])
    assert "1,015 refunds stored; events stored: intake 6,090, notify 17,000" in text
    assert "settled in 4 s): stack 19.0 CPU-ms/s, our four 15.0" in text
    assert "intake 3.0, notify 12.0, broker 4.0, db 1.0" in text
    seeded = Point(100_000, 100_020, {}, {}, 30.0, False, seeded=98_985, seed_seconds=61)
    text = format_point(seeded)
    assert "--history 100,000, 98,985 seeded in 61 s): 100,020 refunds stored" in text
    assert "NOT settled" in text
    assert "after rest" not in text  # not woken: nothing to say
    seeded.after_rest_ms = (3_412.0, 3_980.0)
    assert (
        "after rest: the first refund 3,412 ms POST→paid, the slowest of the wake-up 3,980 ms"
        in (format_point(seeded))
    )


def test_markdown_is_a_table_for_the_readme_with_max_throughput() -> None:
    text = markdown([e2e_run()])
    rows = [line for line in text.splitlines() if line.startswith("|")]
    header, rule, first, second = rows
    assert header.count("|") == rule.count("|") == first.count("|") == second.count("|")
    first_cells = [c.strip() for c in first.strip("|").split("|")]
    assert first_cells == [
        "PostgreSQL",
        "1,015",
        "+0 ms",
        "5",
        "5.0",
        "300 / 1,234 ms",
        "5.0",
        "2.0",
        "4.0",
        "9.0",
        "20.0",
        "5.0",  # sandboxes + broker: 1.5 + 1.0 + 2.5
        "6.0",
        "19.0",  # the point's idle stack
    ]
    assert "highest 12.5 paid/s (offered 20/s" in text
    assert "payment method bank_transfer" in text
    assert max_paid_rate(e2e_run().levels) == 12.5


def test_e2e_json_markdown_and_plot_are_written(tmp_path: Path) -> None:
    run = e2e_run()
    run.levels[1].save_share = None  # unknown: null in JSON, a gap in the plot
    later = e2e_level(5, 4.8, history=100_000, refunds_stored=100_020)
    run.levels.append(later)  # a second history point: the history panel has a line
    json_path = write_json([run], {"settings": {"seconds": 5}}, tmp_path / "e2e.json")
    document = json.loads(json_path.read_text())
    assert document["benchmark"] == "e2e"
    stored = document["stores"][0]
    assert stored["method"] == "bank_transfer"
    assert stored["save"]["saves_per_second"] == 1000.0
    assert stored["levels"][0]["kafka_share"] == pytest.approx(0.01)
    assert stored["levels"][1]["save_share"] is None
    assert stored["levels"][0]["cpu_ms_by_role"]["our four"] == 20.0
    assert stored["levels"][2]["refunds_stored"] == 100_020
    assert stored["points"][0]["idle_ms_per_s"]["stack"] == 19.0
    assert stored["points"][0]["events_stored"]["notify"] == 17_000
    md = write_markdown([run], tmp_path / "e2e.md")
    assert md.read_text().startswith("| store | history (refunds) |")
    png = write_plot([run], tmp_path / "e2e.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_e2e_options() -> None:
    args = e2e.build_parser().parse_args(["--store", "postgres", "--rates", "5,10"])
    assert args.store == "postgres" and args.rates == [5.0, 10.0]
    defaults = e2e.build_parser().parse_args([])
    assert defaults.store == "both" and defaults.idle_seconds == 15
    with pytest.raises(SystemExit):
        e2e.build_parser().parse_args(["--rates", "ten"])
    with pytest.raises(SystemExit):
        e2e.build_parser().parse_args(["--store", "mysql"])


def test_history_without_the_seeder_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bench.history", None)  # as if bench/history.py were absent
    with pytest.raises(RuntimeError, match=r"bench/history\.py"):
        e2e.fill_history(Stores(Path("/tmp/nowhere"), None, None), 10, 0)


def test_a_setting_is_named_as_in_the_code_or_as_its_variable() -> None:
    assert setting("poll_interval_ms=50") == ("REFUNDS_POLL_INTERVAL_MS", "50")
    assert setting("REFUNDS_CONSUMER_LINGER_MS=40") == ("REFUNDS_CONSUMER_LINGER_MS", "40")
    assert setting("published_events=") == ("REFUNDS_PUBLISHED_EVENTS", "")


@pytest.mark.parametrize("text", ["pol_interval_ms=50", "REFUNDS_REFUNDS_X=1", "=1", "linger"])
def test_a_setting_no_service_reads_is_refused(text: str) -> None:
    # The services would ignore it, and the run would measure the defaults.
    with pytest.raises(argparse.ArgumentTypeError):
        setting(text)
