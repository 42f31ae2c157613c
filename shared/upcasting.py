"""Class versions and upcasters for stored event classes, set from outside the aggregate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Changes a stored event's state dict, in place, from one version's shape to the next.
Upcaster = Callable[[dict[str, Any]], None]


def set_upcasters(aggregate: type, event_name: str, *upcasters: Upcaster) -> None:
    """Give the event class `aggregate.<event_name>` one upcaster per earlier version:
    the first becomes `upcast_v1_v2`, the next `upcast_v2_v3`…, and `class_version` the
    version after the last. eventsourcing's Mapper stores that version with each new event
    and runs the upcasters from a stored event's version (1 when it has none) up to it.

    By name, because `@event("Name")` makes the class when the aggregate is defined, out of
    a type checker's sight; the topic it is stored under does not change.
    """
    event_class = getattr(aggregate, event_name)
    for version, upcast in enumerate(upcasters, start=1):
        setattr(event_class, f"upcast_v{version}_v{version + 1}", staticmethod(upcast))
    event_class.class_version = len(upcasters) + 1
