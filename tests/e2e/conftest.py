"""The local stack as the README starts it (`refunds dev`), for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from refunds.devstack import Ports
from tests.e2e.support import Platform
from tests.support.ports import stack_base


@pytest.fixture
def refunds_dev(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Platform, subprocess.Popen[str], Ports]]:
    """`refunds dev` as the README runs it when the test module says `DEV_PROVIDERS = True`
    (the dev tenant's card, Alipay and WeChat Pay at the emulators); otherwise with
    `--no-providers`, for the tests that follow payouts at the sandbox gateway."""
    base = stack_base()
    ports = Ports.from_base(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    cli = Path(sys.executable).with_name("refunds")
    process = subprocess.Popen(
        [str(cli), "dev", "--data-dir", str(tmp_path), "--base-port", str(base)]
        + ([] if getattr(request.module, "DEV_PROVIDERS", False) else ["--no-providers"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    banner = _read_until(process, "Ctrl-C to stop", timeout=90)
    assert "sk_dev_local_only" in banner, banner
    platform = Platform(
        f"http://127.0.0.1:{ports.intake}", f"http://127.0.0.1:{ports.gateway}", tmp_path
    )
    yield platform, process, ports
    platform.close()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:  # its output ended: it exited, or is about to
            process.wait(timeout=10)
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(
        f"refunds dev did not come up (exit code {process.poll()}):\n" + "".join(seen[-40:])
    )
