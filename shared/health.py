"""Liveness of a service's background parts, for /readyz."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _always(part: str) -> bool:
    return True


@dataclass
class Health:
    """Each background part reports whether its last contact with the broker worked."""

    parts: dict[str, bool] = field(default_factory=dict)
    # Whether /readyz waits for `part` in this process now: a leased role (the relay) runs
    # only in the replica leading it, and the others are ready without it.
    expects: Callable[[str], bool] = _always
    # Set at SIGTERM: /readyz answers 503 from then on, so balancers send no new requests
    # while the in-flight ones finish (shared/runtime.py).
    draining: bool = False

    def report(self, part: str, ok: bool) -> None:
        self.parts[part] = ok
