"""The intake benchmark's pure parts: percentiles, the table, the JSON and the plot (no timing)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.intake_create import (
    LevelResult,
    StoreResult,
    format_table,
    percentile,
    percentiles,
    write_json,
    write_plot,
)


def level(concurrency: int, throughput: float) -> LevelResult:
    return LevelResult(
        concurrency=concurrency,
        seconds=10,
        requests=int(throughput * 10),
        errors=0,
        throughput=throughput,
        p50_ms=3.0,
        p95_ms=5.0,
        p99_ms=9.0,
        mean_ms=3.5,
        max_ms=20.0,
        intake_cpu_ms_per_request=2.5,
        db_cpu_ms_per_request=None,
        client_cpu_ms_per_request=1.0,
        machine_busy_percent=60.0,
    )


def test_percentiles_interpolate_like_numpy() -> None:
    assert percentiles([1, 2, 3, 4], [0, 50, 100]) == [1, 2.5, 4]
    assert percentile([10], 99) == 10
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_ratio_table_json_and_plot(tmp_path: Path) -> None:
    result = StoreResult(store="sqlite", bare_save_rate=1000.0, bare_saves=10_000)
    result.levels = [level(1, 200.0), level(16, 800.0), level(64, 700.0)]
    assert result.best is not None and result.best.concurrency == 16
    assert result.ratio == pytest.approx(0.8) and result.meets_goal
    table = format_table(result)
    assert "800.0" in table and "80.0 %" in table
    written = write_json([result], {"machine": "test"}, tmp_path / "r.json")
    assert json.loads(written.read_text())["stores"][0]["best_concurrency"] == 16
    plot = write_plot([result], tmp_path / "r.png")
    assert plot.stat().st_size > 1000
