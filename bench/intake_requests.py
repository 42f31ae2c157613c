"""CPU per request of intake's `POST /v1/refunds` and `GET /v1/refunds/{id}`, one at a time.

    .venv/bin/python -m bench.intake_requests [--posts 300] [--gets 1000] [--source DIR]

Intake runs as its own process on a throw-away SQLite folder (relay and consumer off, as
in bench/intake_create.py); requests go one at a time over one keep-alive connection, so
the figure is what a request costs intake itself, read from /proc before and after. The
GETs cycle over the refunds posted, like the load generator's polling. ``--source`` runs
another checkout's intake with this interpreter: to compare with a checkout whose
environment lacks an optional package (httptools), run this module with that checkout's
interpreter. A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.intake_create_cpu import process_cpu_seconds
from bench.intake_create_load import refund_body
from bench.intake_create_stack import API_KEY, REPO, IntakeProcess

# py-spy beside this interpreter, or on PATH.
PY_SPY = Path(sys.executable).with_name("py-spy")
if not PY_SPY.exists():
    PY_SPY = Path(shutil.which("py-spy") or "py-spy")


@contextlib.contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy's raw (collapsed) stacks of ``pid`` while the block runs, into ``out``."""
    if out is None:
        yield
        return
    command = [str(PY_SPY), "record", "--gil", "--rate", "200", "--format", "raw"]
    spy = subprocess.Popen([*command, "--pid", str(pid), "-o", str(out)])
    time.sleep(1)  # attached before the requests start
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def measure(posts: int, gets: int, source: Path, profile: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        env = {"REFUNDS_DATA_DIR": str(data / "store")}
        with (
            IntakeProcess(env, data / "intake.log", source) as intake,
            httpx.Client(
                base_url=intake.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
            ) as client,
        ):

            def post(n: int) -> str:
                response = client.post(
                    "/v1/refunds", json=refund_body(n), headers={"Idempotency-Key": f"bench-{n}"}
                )
                response.raise_for_status()
                return str(response.json()["id"])

            for n in range(30):  # warm-up: imports, caches, first connections
                post(n)
            with profiled(intake.pid, profile and profile.with_suffix(".post.txt")):
                cpu = process_cpu_seconds(intake.pid)
                started = time.monotonic()
                ids = [post(30 + n) for n in range(posts)]
                post_cpu = process_cpu_seconds(intake.pid) - cpu
                post_wall = time.monotonic() - started
            for refund_id in ids[:30]:
                client.get(f"/v1/refunds/{refund_id}").raise_for_status()
            with profiled(intake.pid, profile and profile.with_suffix(".get.txt")):
                cpu = process_cpu_seconds(intake.pid)
                started = time.monotonic()
                for n in range(gets):
                    client.get(f"/v1/refunds/{ids[n % len(ids)]}").raise_for_status()
                get_cpu = process_cpu_seconds(intake.pid) - cpu
                get_wall = time.monotonic() - started
    return {
        "source": str(source),
        "post_cpu_ms": round(post_cpu * 1000 / posts, 2),
        "post_wall_ms": round(post_wall * 1000 / posts, 2),
        "get_cpu_ms": round(get_cpu * 1000 / gets, 2),
        "get_wall_ms": round(get_wall * 1000 / gets, 2),
        "posts": posts,
        "gets": gets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--gets", type=int, default=1000)
    parser.add_argument("--source", type=Path, default=REPO)
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy stacks to PROFILE.post.txt/.get.txt"
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.posts, args.gets, args.source.resolve(), args.profile)))


if __name__ == "__main__":
    main()
