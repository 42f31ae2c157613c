"""A key made with `refunds api-keys` opens notify's API too, and stops within seconds of its
revocation: notify learns both from intake's events, never from intake's store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from refunds.devstack import Ports
from tests.e2e.support import Platform

pytestmark = [pytest.mark.e2e]

CLI = Path(sys.executable).with_name("refunds")
# The key's way to notify: intake's relay, the broker, notify's consumer; then notify's cache
# of a key's answer (10 s).
WITHIN = 30.0


def api_keys(data_dir: Path, *args: str) -> str:
    """`refunds api-keys …` against the running stack's intake store; its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    done = subprocess.run(
        [str(CLI), "api-keys", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    return done.stdout.strip()


def answers(url: str, key: str, status: int) -> bool:
    response = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return response.status_code == status


def wait_until(url: str, key: str, status: int, what: str) -> None:
    deadline = time.monotonic() + WITHIN
    while not answers(url, key, status):
        assert time.monotonic() < deadline, f"notify did not {what} within {WITHIN:g} s"
        time.sleep(0.25)


def test_a_revoked_key_stops_opening_notify_within_seconds(
    refunds_dev: tuple[Platform, subprocess.Popen[str], Ports],
) -> None:
    platform, _, ports = refunds_dev
    endpoints = f"http://127.0.0.1:{ports.notify}/v1/webhook_endpoints"
    key = api_keys(platform.data_dir, "create", "--tenant", "acme")
    other = api_keys(platform.data_dir, "create", "--tenant", "acme")

    wait_until(endpoints, key, 200, "accept a key issued by intake")
    wait_until(endpoints, other, 200, "accept the tenant's second key")

    out = api_keys(platform.data_dir, "revoke", key[:12], "--reason", "leaked")
    assert f"Revoked {key[:12]} (tenant acme)" in out
    wait_until(endpoints, key, 401, "refuse the revoked key")
    assert answers(endpoints, other, 200)  # the tenant's other key still opens it
