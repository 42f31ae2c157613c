"""Who did it and why: an audit stamp written inside every stored event.

A command runs under a `Stamp` (the acting tenant key, staff person or
`system:<part>`, the request or message that caused it, the refund it concerns).
`StampingMapper` writes the stamp into each event's stored state under
`_audit`, in the same transaction as the event, so the ledger's hashes cover it
and no domain event class needs a field for it. Reading events back strips it:
the domain never sees it. While tracing records a span, the stamp also holds its
W3C `traceparent`: the relay publishes the event as a continuation of it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent

from shared.tracing import current_traceparent

STAMP_KEY = "_audit"


@dataclass
class Stamp:
    """Mutable on purpose: auth dependencies fill in the actor of the request's stamp."""

    actor: str | None = None
    via: str | None = None  # the credential: an API key's fingerprint, a token's roles
    causation: str | None = None  # the request id or the upstream CloudEvent id
    correlation: str | None = None  # the refund id

    def as_state(self) -> dict[str, str]:
        # Its own fields, flat strings: `dataclasses.asdict` deep-copies for nothing (it was
        # a third of stamping each stored event).
        return {name: value for name, value in vars(self).items() if value is not None}


_current: contextvars.ContextVar[Stamp | None] = contextvars.ContextVar("stamp", default=None)


def current() -> Stamp | None:
    return _current.get()


@contextlib.contextmanager
def acting(
    actor: str | None = None,
    *,
    via: str | None = None,
    causation: str | None = None,
    correlation: str | None = None,
) -> Iterator[Stamp]:
    """Run the enclosed commands under a fresh stamp."""
    stamp = Stamp(actor=actor, via=via, causation=causation, correlation=correlation)
    token = _current.set(stamp)
    try:
        yield stamp
    finally:
        _current.reset(token)


def begin(causation: str) -> contextvars.Token[Stamp | None]:
    """A request's stamp, opened by the HTTP middleware (closed with `end`)."""
    return _current.set(Stamp(causation=causation))


def end(token: contextvars.Token[Stamp | None]) -> None:
    _current.reset(token)


def identify(actor: str, via: str | None = None) -> None:
    """Called by authentication once the caller is known: names the request's actor."""
    stamp = _current.get()
    if stamp is not None:
        stamp.actor = actor
        stamp.via = via


class StampingMapper(Mapper[Any]):
    """eventsourcing's mapper, plus the current stamp in every stored event's state.

    `default_actor` (e.g. `system:payout`) names work done outside any request or
    message: background loops such as the payout executor or the SLA clock.
    """

    default_actor = "system"

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        stamp = _current.get()
        audit = stamp.as_state() if stamp is not None else {}
        audit.setdefault("actor", self.default_actor)
        traceparent = current_traceparent()
        if traceparent is not None:
            audit["traceparent"] = traceparent
        # The same event with one more attribute: eventsourcing stores vars(event).
        stamped = object.__new__(type(domain_event))
        object.__setattr__(stamped, "__dict__", {**vars(domain_event), STAMP_KEY: audit})
        return super().to_stored_event(stamped)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.to_stamped_event(stored_event)[0]

    def to_stamped_event(self, stored_event: StoredEvent) -> tuple[Any, dict[str, str]]:
        """The domain event and, apart, the stamp it was stored with (empty if none)."""
        event = super().to_domain_event(stored_event)
        audit = vars(event).pop(STAMP_KEY, None)
        return event, dict(audit) if isinstance(audit, dict) else {}
