"""A service or sandbox the benchmarks start on their own: `python -m <module>` from a checkout
(this one or another, to compare), in its own session, ready once its health route answers,
stopped with SIGTERM (then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

# The caller's own settings must not leak into a process the benchmark configures itself.
STRIPPED = ("REFUNDS_", "SANDBOX_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """`python -m <module>` in its own session (Ctrl-C reaches the benchmark, which stops it)."""

    def __init__(
        self,
        name: str,
        module: str,
        env: dict[str, str],
        log: Path,
        port: int,
        source: Path,
        stripped: Sequence[str] = STRIPPED,
    ) -> None:
        self.name, self.module, self.log_path, self.port = name, module, log, port
        self.source = source
        self.url = f"http://127.0.0.1:{port}"
        parent = {k: v for k, v in os.environ.items() if not k.startswith(tuple(stripped))}
        self.env = parent | {"PYTHONUNBUFFERED": "1"} | env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, health: str = "/healthz", timeout: float = 60) -> None:
        """Start it and wait until `health` answers 200; stopped again if it never does."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=self.source,  # `-m` puts it first on sys.path, before the editable install
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy(health, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, health: str, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise RuntimeError(f"{self.name} exited with {code}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(health).status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not answer {health} in {timeout} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"
