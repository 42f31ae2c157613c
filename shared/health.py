"""Liveness of a service's background parts, for /readyz."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Health:
    """Each background part reports whether its last contact with the broker worked."""

    parts: dict[str, bool] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)

    def report(self, part: str, ok: bool) -> None:
        if self.parts.get(part) != ok:
            self.since[part] = time.time()
        self.parts[part] = ok

    def failing(self) -> list[str]:
        return sorted(part for part, ok in self.parts.items() if not ok)
