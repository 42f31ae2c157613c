"""Counting what a store's log readers are handed (a start that reads only what is new since
its checkpoint reads few events, or none)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification

from shared.application import ServiceApplication


class Reads:
    """Counts the events the store hands out (every follower reads through this)."""

    def __init__(self, app: ServiceApplication) -> None:
        self.events = 0
        self._select = app.recorder.select_notifications
        app.recorder.select_notifications = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> Sequence[Notification]:
        found = self._select(*args, **kwargs)
        self.events += len(found)
        return found
