"""Liveness of a service's background parts, for /readyz."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Health:
    """Each background part reports whether its last contact with the broker worked."""

    parts: dict[str, bool] = field(default_factory=dict)

    def report(self, part: str, ok: bool) -> None:
        self.parts[part] = ok
