"""A return shipment as the carrier sees it: its tracking events and the state they reach.

Pure and standard library only: the carrier adapter (carriers.py) builds trails from
Kuaidi100's JSON, and the return lifecycle compares them without knowing the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, get_args

from shared.vocabulary import normalize_tracking_number

# Where a shipment is, in our words. `pending`: the carrier has no event yet.
TrackingState = Literal[
    "pending",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "problem",
    "refused",
    "returning",
    "unknown",
]
# Kuaidi100's own word for a push: still watched, finished (delivered), or given up.
PushStatus = Literal["polling", "shutdown", "abort"]
PUSH_STATUSES: tuple[PushStatus, ...] = get_args(PushStatus)

# Kuaidi100's `state` codes (实时查询 / 订阅推送 documents) and what each means to us.
KUAIDI100_STATES: dict[str, TrackingState] = {
    "0": "in_transit",  # 在途
    "1": "picked_up",  # 揽收
    "2": "problem",  # 疑难: the carrier cannot go on without help
    "3": "delivered",  # 签收
    "4": "returning",  # 退签: signed for by the sender again
    "5": "out_for_delivery",  # 派件
    "6": "returning",  # 退回: on its way back to the sender
    "7": "in_transit",  # 转投: handed to another carrier
    "8": "in_transit",  # 清关: customs clearance
    "14": "refused",  # 拒签
}
# Kuaidi100 stamps events in China Standard Time, without a zone.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def state_from_kuaidi100(code: str) -> TrackingState:
    """Our state for a Kuaidi100 `state`, including the finer codes `resultv2` asks for.

    Finer codes name their main state first: 101-103 are 揽收 (1), 301-304 签收 (3),
    1001-1003 在途 (0). Anything else is `unknown`, never a guess at `delivered`.
    """
    code = code.strip()
    if code in KUAIDI100_STATES:
        return KUAIDI100_STATES[code]
    if len(code) == 4 and code.startswith("10") and code.isdigit():
        return "in_transit"
    if len(code) == 3 and code.isdigit() and code[0] in KUAIDI100_STATES:
        return KUAIDI100_STATES[code[0]]
    return "unknown"


class MalformedTrail(ValueError):
    """A carrier's trail that cannot be read: a missing field, a time that is no time."""


@dataclass(frozen=True, order=True)
class TrackingEvent:
    """One line of the trail. Identity is (time, context): a carrier repeats the whole trail
    in every push, so the same event arrives many times and must count once."""

    time: datetime
    context: str
    status: str = field(default="", compare=False)  # the carrier's word, e.g. 签收
    area: str = field(default="", compare=False)

    @classmethod
    def from_kuaidi100(cls, item: Any) -> TrackingEvent:
        if not isinstance(item, dict):
            raise MalformedTrail(f"an event must be an object, got {type(item).__name__}")
        stamp, context = item.get("time") or item.get("ftime"), item.get("context")
        if not isinstance(stamp, str) or not isinstance(context, str):
            raise MalformedTrail("an event needs `time` and `context` text")
        try:
            moment = datetime.strptime(stamp.strip(), EVENT_TIME_FORMAT)
        except ValueError as error:
            raise MalformedTrail(f"event time {stamp!r} is not YYYY-MM-DD HH:MM:SS") from error
        return cls(
            time=moment.replace(tzinfo=CHINA_STANDARD_TIME),
            context=context,
            status=str(item.get("status") or ""),
            area=str(item.get("areaName") or ""),
        )


@dataclass(frozen=True)
class Trail:
    """The carrier's view of one shipment: where it is and every event so far.

    `events` is a set, so a repeated push adds nothing; `news_since` and `merged` make an
    older trail arriving after a newer one change nothing either.
    """

    carrier: str
    number: str
    state: TrackingState
    events: frozenset[TrackingEvent] = frozenset()
    push_status: PushStatus | None = None  # set on pushes, None on a query's answer

    @property
    def latest(self) -> TrackingEvent | None:
        return max(self.events, default=None)

    @property
    def delivered(self) -> bool:
        return self.state == "delivered"

    def newest_first(self) -> tuple[TrackingEvent, ...]:
        return tuple(sorted(self.events, reverse=True))

    def news_since(self, known: Trail | None) -> frozenset[TrackingEvent]:
        """The events of this trail that `known` does not have (all of them when None)."""
        self._same_shipment(known)
        return self.events - known.events if known is not None else self.events

    def is_news_to(self, known: Trail | None) -> bool:
        """Whether recording this trail after `known` changes anything at all."""
        return known is None or self.merged(known) != known

    def merged(self, known: Trail | None) -> Trail:
        """What is known after this trail arrives after `known`: the union of the events, and
        the state of whichever trail reaches the later event (the known one on a tie), so a
        duplicate or stale push never moves a shipment back. On a tie a push's status is
        kept (Kuaidi100 may give up, `abort`, without a new event)."""
        self._same_shipment(known)
        if known is None:
            return self
        events = self.events | known.events
        mine, theirs = self.latest, known.latest
        if mine is not None and (theirs is None or mine > theirs):
            return replace(self, events=events)
        if mine == theirs and self.push_status is not None:
            return replace(known, events=events, push_status=self.push_status)
        return replace(known, events=events)

    def _same_shipment(self, other: Trail | None) -> None:
        if other is not None and (other.carrier, other.number) != (self.carrier, self.number):
            raise ValueError(
                f"trails of different shipments: {self.carrier}/{self.number} "
                f"and {other.carrier}/{other.number}"
            )


def trail_from_kuaidi100(result: Any, push_status: PushStatus | None = None) -> Trail:
    """A Trail from Kuaidi100's result object (a push's `lastResult`, a query's answer)."""
    if not isinstance(result, dict):
        raise MalformedTrail("the result must be an object")
    carrier, number, state = result.get("com"), result.get("nu"), result.get("state")
    data = result.get("data")
    if not isinstance(carrier, str) or not carrier or not isinstance(number, str) or not number:
        raise MalformedTrail("the result needs `com` and `nu`")
    if not isinstance(state, str | int) or not isinstance(data, list):
        raise MalformedTrail("the result needs `state` and a `data` list")
    events = frozenset(TrackingEvent.from_kuaidi100(item) for item in data)
    return Trail(
        carrier=carrier.strip().lower(),
        number=normalize_tracking_number(number),
        state=state_from_kuaidi100(str(state)) if events else "pending",
        events=events,
        push_status=push_status,
    )


def trail_to_record(trail: Trail, events: frozenset[TrackingEvent]) -> dict[str, Any]:
    """`events` of `trail` and the state it reached, as a stored event keeps them."""
    return {
        "state": trail.state,
        "push_status": trail.push_status,
        "events": [
            {"time": e.time, "context": e.context, "status": e.status, "area": e.area}
            for e in sorted(events)
        ],
    }
