"""`Reaction` collects what eventsourcing's ProcessingEvent collects, by a faster path for
aggregates (no runtime protocol checks); anything else goes the library's way."""

from __future__ import annotations

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking

from shared.application import Reaction


class Parcel(Aggregate):
    def __init__(self, label: str) -> None:
        self.label = label

    @event("Relabelled")
    def relabel(self, label: str) -> None:
        self.label = label


def collected(processing: ProcessingEvent) -> tuple[object, ...]:
    """What was collected: each event (its aggregate by its place among the aggregates),
    the extra arguments and the tracking."""
    places = {aggregate_id: n for n, aggregate_id in enumerate(processing.aggregates)}
    events = [
        (type(e).__name__, places.get(e.originator_id, "bare"), e.originator_version)
        for e in processing.events
    ]
    return events, processing.saved_kwargs, processing.tracking


def test_a_reaction_collects_as_the_library_does() -> None:
    tracking = Tracking(application_name="upstream", notification_id=7)
    found = []
    for processing in (Reaction(tracking), ProcessingEvent(tracking)):
        parcel, other = Parcel("a"), Parcel("b")
        parcel.relabel("c")
        bare = Parcel("d").collect_events()[0]  # an event on its own, not an aggregate
        processing.collect_events(parcel, None, other, bare, reason="test")
        assert parcel.collect_events() == []  # collected once
        assert processing.aggregates == {parcel.id: parcel, other.id: other}
        found.append(collected(processing))

    assert found[0] == found[1]
    assert found[0][0] == [
        ("Created", 0, 1),
        ("Relabelled", 0, 2),
        ("Created", 1, 1),
        ("Created", "bare", 1),
    ]
