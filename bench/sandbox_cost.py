"""What one refund costs the sandbox gateway and one message the SMS sandbox: CPU, thread hops,
SQLite commits and fsyncs, counted inside the sandbox's own process.

    .venv/bin/python -m bench.sandbox_cost [--sandbox gateway|sms|both] [--count 500]
        [--source /path/to/another/checkout]

Each sandbox runs as a child process (this module with --serve) that counts, around the
real code, every hop to a worker thread (anyio's and asyncio's), every SQLite commit
(explicit COMMIT, or a write outside a transaction) and every os.fsync; the parent posts
``count`` requests one at a time after a warm-up, waits for the gateway's callbacks, and
reads the child's CPU from /proc. ``--source`` serves another checkout's sandbox code (for
a before/after comparison in one run). A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COUNTS_PATH = "/__bench_counts"


# -- the child: the sandbox, counted -------------------------------------------------------------


def _serve(sandbox: str, port: int, data_dir: Path) -> None:
    import asyncio
    import sqlite3

    import anyio.to_thread
    import uvicorn

    counts = {"thread_hops": 0, "commits": 0, "fsyncs": 0}
    run_sync, to_thread, fsync, connect = (
        anyio.to_thread.run_sync,
        asyncio.to_thread,
        os.fsync,
        sqlite3.connect,
    )

    async def counted_run_sync(*args: Any, **kwargs: Any) -> Any:
        counts["thread_hops"] += 1
        return await run_sync(*args, **kwargs)

    async def counted_to_thread(*args: Any, **kwargs: Any) -> Any:
        counts["thread_hops"] += 1
        return await to_thread(*args, **kwargs)

    def counted_fsync(fd: int) -> None:
        counts["fsyncs"] += 1
        fsync(fd)

    def counted_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        in_transaction = [False]

        def trace(statement: str) -> None:
            verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
            if verb == "BEGIN":
                in_transaction[0] = True
            elif verb in ("COMMIT", "END"):
                in_transaction[0] = False
                counts["commits"] += 1
            elif verb == "ROLLBACK":
                in_transaction[0] = False
            elif verb in ("INSERT", "UPDATE", "DELETE", "REPLACE") and not in_transaction[0]:
                counts["commits"] += 1  # autocommit: a transaction of its own

        conn.set_trace_callback(trace)
        return conn

    anyio.to_thread.run_sync = counted_run_sync  # type: ignore[assignment]
    asyncio.to_thread = counted_to_thread
    os.fsync = counted_fsync
    sqlite3.connect = counted_connect  # type: ignore[assignment]

    if sandbox == "gateway":
        from sandbox.gateway.app import create_app

        app = create_app(data_dir, callback_secret="bench-secret")  # noqa: S106 - a bench's own
    else:
        from sandbox.sms import create_app

        app = create_app(data_dir)

    async def report() -> dict[str, int]:
        return dict(counts)

    app.add_api_route(COUNTS_PATH, report, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the parent: load and measure ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class _Receiver(ThreadingHTTPServer):
    """Takes the gateway's callbacks, answering 200, and counts them."""

    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the payout service's uvicorn

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with server.lock:
                    server.received += 1

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def _request(sandbox: str, n: int, run: str, notify_url: str) -> tuple[str, dict[str, Any], dict]:
    if sandbox == "gateway":
        body = {
            "merchant_refund_no": f"BENCH-{run}-{n}",
            "amount": 1000 + n,
            "currency": "CNY",
            "method": "bank_transfer",
            "payment_reference": f"PAY-{n}",
            "notify_url": notify_url,
        }
        return "/v1/refunds", body, {}
    body = {"to": "+8613800138000", "text": f"Your refund {n} of CNY 10.00 is on its way."}
    return "/v1/messages", body, {"Idempotency-Key": f"{run}-{n}"}


def measure(
    sandbox: str, count: int, source: Path | None, profile: Path | None = None
) -> dict[str, Any]:
    from bench.intake_requests import profiled  # here: the child may run another checkout

    port = _free_port()
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    notify_url = f"http://127.0.0.1:{receiver.server_address[1]}/callbacks"
    code = source or Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(code))
    with tempfile.TemporaryDirectory() as data_dir:
        command = [sys.executable, __file__, "--serve", sandbox]
        command += ["--port", str(port), "--data-dir", data_dir]
        child = subprocess.Popen(command, env=env, cwd=code)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 15
                while True:
                    try:
                        client.get("/healthz").raise_for_status()
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)

                def post(n: int, run: str) -> None:
                    path, body, headers = _request(sandbox, n, run, notify_url)
                    client.post(path, json=body, headers=headers).raise_for_status()

                def settle(expected: int) -> None:
                    if sandbox == "gateway":
                        while receiver.received < expected:
                            time.sleep(0.01)
                    time.sleep(0.3)  # the last callbacks' outcomes are recorded

                for n in range(50):
                    post(n, "warmup")
                settle(50)
                out = profile and profile.with_suffix(f".{sandbox}.txt")
                with profiled(child.pid, out):
                    before = client.get(COUNTS_PATH).json()
                    cpu_before = _cpu_seconds(child.pid)
                    started = time.monotonic()
                    for n in range(count):
                        post(n, "measured")
                    settle(50 + count)
                    elapsed = time.monotonic() - started
                    cpu = _cpu_seconds(child.pid) - cpu_before
                    after = client.get(COUNTS_PATH).json()
        finally:
            child.terminate()
            child.wait(10)
            receiver.shutdown()
    per = {name: (after[name] - before[name]) / count for name in after}
    return {
        "sandbox": sandbox,
        "source": str(code),
        "count": count,
        "cpu_ms_per_request": round(cpu * 1000 / count, 2),
        "seconds": round(elapsed, 2),
        **{f"{name}_per_request": round(value, 2) for name, value in per.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sandbox", choices=("gateway", "sms", "both"), default="both")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy stacks, PROFILE.<sandbox>.txt"
    )
    parser.add_argument("--serve", choices=("gateway", "sms"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.data_dir)
        return
    sandboxes = ("gateway", "sms") if args.sandbox == "both" else (args.sandbox,)
    for sandbox in sandboxes:
        print(json.dumps(measure(sandbox, args.count, args.source, args.profile)))


if __name__ == "__main__":
    main()
