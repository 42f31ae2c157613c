"""`python -m bench.loadgen` from a process of its own against the stack `refunds dev` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from refunds.devstack import Ports
from tests.e2e.support import Platform

pytestmark = [pytest.mark.e2e]

RATE, DURATION = 20, 5


def test_loadgen_offers_its_rate_and_follows_every_refund_to_its_end(
    refunds_dev: tuple[Platform, subprocess.Popen[str], Ports], tmp_path: Path
) -> None:
    _, _, ports = refunds_dev
    out = tmp_path / "loadgen.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--intake",
            f"http://127.0.0.1:{ports.intake}",
            "--rate",
            str(RATE),
            "--duration",
            str(DURATION),
            "--follow",
            "--follow-timeout",
            "40",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "POST p50/p95/p99" in done.stdout
    result = json.loads(out.read_text())

    # Open loop: exactly rate x duration offered, in the default 80/10/10 mix, every one answered.
    count = RATE * DURATION
    assert result["requests"] == count
    assert result["by_kind"] == {"auto": 80, "reject": 10, "manual": 10}
    assert result["answered"] == count
    assert result["by_http_status"] == {"201": count}
    assert result["errors"] == {"5xx": 0, "transport": 0, "transport_kinds": {}}
    # The last request is scheduled (count - 1) / rate after the first, so the answer rate
    # cannot exceed count / that; a loaded 2-core machine may answer slower, not 4 times slower.
    assert RATE / 4 <= result["achieved_rate"] <= count / ((count - 1) / RATE) + 0.01
    assert result["offer_span_s"] < DURATION + 2
    p = result["post_ms"]
    assert 0 < p["p50"] <= p["p95"] <= p["p99"]

    # Each followed refund ended where its kind leads: paid, rejected by the window, or in review.
    follow = result["follow"]
    assert follow["followed"] == follow["reached_terminal"] == count
    assert follow["not_terminal"] == follow["unexpected"] == 0
    assert follow["by_kind"] == {
        "auto": {"paid": 80},
        "reject": {"rejected": 10},
        "manual": {"in_review": 10},
    }
    assert follow["poll_errors"] == {}
    f = follow["final_ms"]
    assert p["p50"] <= f["p50"] <= f["p95"] <= f["p99"]

    # A run that does not count says so: with a wrong key every answer is a 401.
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--intake",
            f"http://127.0.0.1:{ports.intake}",
            "--api-key",
            "sk_wrong_0000000000000000000000",
            "--rate",
            "5",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr[-2000:]
    assert "401" in refused.stdout
