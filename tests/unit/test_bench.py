"""The benchmarks' pure parts: statistics, reports, JSON and plots (no timing assertions)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path

import pytest

from bench.intake_create import BenchRefund, bare_save_rate, concurrency_levels
from bench.intake_create_cpu import machine_ticks, process_cpu_seconds
from bench.intake_create_load import refund_body
from bench.intake_create_report import (
    LevelResult,
    StoreResult,
    format_table,
    percentile,
    percentiles,
    write_json,
    write_plot,
)
from bench.kafka_baseline import kafka_settings


def level(concurrency: int, throughput: float, *, db: float | None = None) -> LevelResult:
    return LevelResult(
        concurrency=concurrency,
        seconds=10.0,
        requests=int(throughput * 10),
        errors=0,
        throughput=throughput,
        p50_ms=2.0 * concurrency,
        p95_ms=3.0 * concurrency,
        p99_ms=4.0 * concurrency,
        mean_ms=2.1 * concurrency,
        max_ms=9.0 * concurrency,
        intake_cpu_ms_per_request=1.5,
        db_cpu_ms_per_request=db,
        client_cpu_ms_per_request=1.2,
        machine_busy_percent=90.0,
    )


def synthetic() -> list[StoreResult]:
    sqlite = StoreResult("sqlite", 1000.0, 10_000, 0.5, None, [level(1, 300.0), level(16, 750.0)])
    postgres = StoreResult(
        "postgres", 600.0, 6000, 0.8, 0.4, [level(1, 200.0, db=0.5), level(16, 320.0, db=0.6)]
    )
    return [sqlite, postgres]


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert percentiles(values, [0, 50, 100]) == [1.0, 50.5, 100.0]
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_best_level_ratio_and_goal() -> None:
    sqlite, postgres = synthetic()
    assert sqlite.best is not None and sqlite.best.concurrency == 16
    assert sqlite.ratio == pytest.approx(0.75)
    assert sqlite.meets_goal
    assert postgres.ratio == pytest.approx(320 / 600)
    assert not postgres.meets_goal
    assert math.isnan(StoreResult("empty", 1000.0, 1).ratio)


def test_table_is_aligned_and_states_the_verdict() -> None:
    table = format_table(synthetic()[1])
    lines = table.splitlines()
    assert lines[0] == "intake POST /v1/refunds — postgres"
    header, rule, *rows = lines[1:5]
    assert header.split()[0] == "concurrency"
    assert header.endswith("other busy %")
    assert rows[0].endswith(" -")  # not measured in synthetic levels: NaN shows as "-"
    assert set(rule.replace(" ", "")) == {"-"}
    assert len({len(header), len(rule), *(len(row) for row in rows)}) == 1
    assert rows[1].split()[:2] == ["16", "320.0"]
    assert "600.0 saves/s" in table
    assert "53.3 % of the bare save rate" in table
    assert "NOT met" in table
    sqlite_table = format_table(synthetic()[0])
    assert "(goal ≥ 70 %: met)" in sqlite_table
    assert rows[0].split()[7] == "0.50"  # db CPU column, filled for PostgreSQL
    assert format_table(synthetic()[0]).splitlines()[3].split()[7] == "-"


def test_errors_are_listed_under_the_table() -> None:
    result = synthetic()[0]
    result.levels[0].errors = 3
    result.levels[0].error_kinds = {"422": 2, "ReadTimeout": 1}
    result.levels[0].error_sample = "422: {...}"
    table = format_table(result)
    assert "errors at concurrency 1: 422 x2, ReadTimeout x1" in table
    assert "first: 422: {...}" in table


def test_json_and_plot_are_written(tmp_path: Path) -> None:
    results = synthetic()
    results[0].levels[0].p99_ms = math.nan  # no successes at a level: null, a gap in the plot
    json_path = write_json(results, {"settings": {"seconds": 10}}, tmp_path / "out" / "r.json")
    document = json.loads(json_path.read_text())
    assert document["benchmark"] == "intake_create"
    assert [store["store"] for store in document["stores"]] == ["sqlite", "postgres"]
    assert document["stores"][0]["best_concurrency"] == 16
    assert document["stores"][0]["meets_goal"] is True
    assert document["stores"][0]["levels"][0]["p99_ms"] is None
    assert document["stores"][1]["levels"][1]["throughput"] == 320.0

    png = write_plot(results, tmp_path / "out" / "r.png")
    assert png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_counters_read_proc() -> None:
    assert process_cpu_seconds(os.getpid()) > 0
    busy, total = machine_ticks()
    assert 0 <= busy <= total


def test_concurrency_levels_parse() -> None:
    assert concurrency_levels("1,16,64") == [1, 16, 64]
    with pytest.raises(argparse.ArgumentTypeError):
        concurrency_levels("0,4")
    with pytest.raises(argparse.ArgumentTypeError):
        concurrency_levels("a")


def test_body_matches_the_request_schema() -> None:
    """When the API schema tightens, this fails first: update refund_body
    (bench/intake_create_load.py)."""
    from services.intake.api import RefundCreate

    body = RefundCreate.model_validate(refund_body(7))
    assert body.order.id == "ORD-bench-7"


def test_baseline_saves_on_sqlite(tmp_path: Path) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "b.db")}
    rate = bare_save_rate(env, seconds=0.2, warmup=0.05)
    assert rate.saves > 0 and rate.saves_per_second > 0
    assert rate.db_cpu_ms_per_save is None
    assert BenchRefund(request=refund_body(1)).request["order"]["id"] == "ORD-bench-1"


# -- bench/kafka_baseline.py ------------------------------------------------------------------


def test_kafka_settings_are_a_dev_services_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUNDS_KAFKA_IDEMPOTENCE", "true")  # must not leak into the baseline
    monkeypatch.setenv("REFUNDS_KAFKA_PARTITIONS", "9")
    settings = kafka_settings("127.0.0.1:12345")
    assert settings.kafka_bootstrap == "127.0.0.1:12345"
    assert settings.kafka_idempotence is False
    assert settings.kafka_partitions == 4


# -- bench/console_queue.py: the queue page with many open cases ---------------------------------


def test_console_queue_benchmark_runs_on_a_tiny_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole script, small: cases filled, the provider, review and the console started, a
    person signed in, each page asked of the console and of review, the report written."""
    from bench import console_queue

    argv = ["--store", "sqlite", "--cases", "30", "--requests", "2", "--warmup", "1"]
    assert console_queue.main([*argv, "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "console queue page with 30 open cases" in table
    verdict = r"sqlite \(this\): first page p95 [\d,.]+ ms \(goal < 300 ms: (met|NOT met)\)"
    assert re.search(verdict, table)
    (report,) = tmp_path.glob("console_queue-*.json")
    timings = json.loads(report.read_text())["timings"]
    assert [(t["page"], t["target"]) for t in timings] == [
        (page, target)
        for page in ("first page", "filtered", "later page")
        for target in ("review", "console")
    ]
    by = {(t["page"], t["target"]): t for t in timings}
    assert by["first page", "console"]["rows"] == 20 == by["first page", "review"]["rows"]
    assert 0 < by["later page", "console"]["rows"] == by["later page", "review"]["rows"] <= 15
    assert by["filtered", "console"]["rows"] == by["filtered", "review"]["rows"] > 0
    assert all(t["p50_ms"] > 0 and t["cpu_ms"]["db"] is None for t in timings)
    assert {t["code"] for t in timings} == {"this"}  # no --before: this checkout only
    (plot,) = tmp_path.glob("console_queue-*.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
