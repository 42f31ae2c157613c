"""Signalling, probing and describing the local stack's child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from refunds.ports import HOST

PROBE_TIMEOUT_SECONDS = 1.0


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the child's whole process group (its session), so no grandchild is left behind."""
    # Only called before the child is reaped, so its pid (= group id) cannot have been reused.
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(signum)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def describe_exit(code: int) -> str:
    """'exited with code 2' or 'was killed by SIGKILL', for messages about a dead component."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
