"""The relay reads only the stored events its mapping declares it may publish (`publishes`):
the declaration must name every class the mapping turns into an integration event, or that
event would silently never leave. And the events it passes over are never decoded."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from refunds.stores import Stores, open_service
from services.intake.publishing import to_integration as intake_mapping
from services.notify.messages.application import to_integration as notify_mapping
from services.payout.publishing import to_integration as payout_mapping
from services.review.publishing import to_integration as review_mapping
from shared.application import ServiceApplication
from shared.follower import LogFollower
from shared.relay import PUBLISHES, PublishedTopics, published_topics, publishes
from tests.unit.test_event_versions import stored_event_classes

FROZEN = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
RELEASES = sorted(p.name for p in FROZEN.iterdir() if (p / "MANIFEST.json").is_file())
MAPPINGS: dict[str, Callable[[Any], Any]] = {
    "intake": intake_mapping,
    "review": review_mapping,
    "payout": payout_mapping,
    "notify": notify_mapping,
}


@pytest.mark.parametrize("service", sorted(MAPPINGS))
def test_a_class_left_out_of_the_declaration_is_never_published(service: str) -> None:
    """Every undeclared event class of the service, even carrying any field, maps to None:
    the mapping turns it away by its class before it reads a field."""
    mapping = MAPPINGS[service]
    declared = getattr(mapping, PUBLISHES)
    undeclared = [
        cls
        for cls in stored_event_classes().values()
        if cls.__module__.startswith(f"services.{service}.") and not issubclass(cls, declared)
    ]
    assert undeclared, "every class declared: nothing to check"
    for cls in undeclared:
        stub = object.__new__(cls)
        object.__setattr__(stub, "originator_id", uuid.uuid4())
        try:
            published = mapping(stub)
        except AttributeError as error:
            pytest.fail(f"{cls.__qualname__} is read by {service}'s mapping ({error}): declare it")
        assert published is None, f"{cls.__qualname__} is published: declare it"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("service", sorted(MAPPINGS))
def test_every_stored_event_published_from_a_frozen_store_is_declared(
    service: str, release: str, tmp_path: Path
) -> None:
    """Stored topics of every release (moved classes' old topics too) pass the relay's test."""
    shutil.copy(FROZEN / release / f"{service}.sqlite", tmp_path / f"{service}.sqlite")
    mapping = MAPPINGS[service]
    wanted = published_topics(mapping)
    assert wanted is not None
    published = 0
    with open_service(Stores(tmp_path, None, None), service) as app:
        for notification in app.recorder.select_notifications(start=1, limit=100_000):
            if mapping(app.mapper.to_domain_event(notification)) is not None:
                published += 1
                assert wanted(notification.topic), f"{notification.topic} published, not declared"
    assert published > 0


class Case(Aggregate):
    @event("Opened")
    def __init__(self) -> None:
        self.notes = 0

    @event("Noted")
    def note(self) -> None:
        self.notes += 1


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ServiceApplication]:
    application = ServiceApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "log.sqlite"),
        }
    )
    yield application
    application.close()


async def test_a_follower_of_declared_classes_decodes_only_those_and_goes_past_the_rest(
    app: ServiceApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = []
    mapper: Any = app.mapper
    to_stamped = mapper.to_stamped_event

    def counting(notification: Any) -> Any:
        decoded.append(notification.topic)
        return to_stamped(notification)

    monkeypatch.setattr(mapper, "to_stamped_event", counting)
    case = Case()
    for _ in range(5):
        case.note()
    app.save(case)  # positions 1 (Opened) to 6 (Noted)
    app.save(Case())  # 7 (Opened)
    second = Case()
    second.note()
    app.save(second)  # 8 (Opened), 9 (Noted)

    follower = LogFollower(app, "relay:test", choose=PublishedTopics((Case.Opened,)))
    await follower.load()
    batch = await follower.next_batch(wait=1)
    assert [item.position for item in batch] == [1, 7, 8]
    assert follower.reached == 9  # past the unpublished Noted at 9
    assert set(decoded) == {get_topic(Case.Opened)}
    await follower.advance(follower.reached)
    assert await follower.next_batch(wait=0.05) == []


def test_the_declaration_is_carried_by_the_mapping() -> None:
    @publishes(Case.Opened)
    def mapping(stored: Any) -> None:
        return None

    wanted = published_topics(mapping)
    assert wanted is not None
    assert wanted(get_topic(Case.Opened))
    assert not wanted(get_topic(Case.Noted))
    assert published_topics(lambda stored: None) is None  # undeclared: every event is read
