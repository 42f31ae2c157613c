"""What every sandbox shares: where it listens (from the environment), and `with` to run it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = "./data"
EXIT_BAD_CONFIG = 2


def host_from_env(name: str) -> str:
    host = os.environ.get(name, DEFAULT_HOST).strip()
    if not host:
        raise ValueError(f"{name} must not be empty")
    return host


def port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default)).strip()
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{name} must be between 1 and 65535, got {port}")
    return port


def data_dir_from_env() -> Path:
    return Path(os.environ.get("SANDBOX_DATA_DIR", DEFAULT_DATA_DIR))


class Served:
    """A sandbox started by `start` and stopped by `stop`, also as a `with` block."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
