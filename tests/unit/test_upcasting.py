"""Every stored event class whose fields changed since the first commit reads its first shape.

For each of the 14 classes (services/<svc>/upcasting.py), an event made by today's code is
stored through its service's mapper, turned into the shape the first build that stored it
wrote (the history report of issue 15, §3: fields taken away, fields it had put back, and no
`class_version`, as nothing was stored with one), loaded with `mapper.to_domain_event` and
applied to its aggregate: it loads with the documented values. An event of today's shape
stored without a version, as 0.1.0 stored every event, loads unchanged.

Here: the unchanged 0.1.0 shapes, intake's and notify's first shapes, and the check that
every versioned class is tested; payout's and review's first shapes are in
test_upcasting_payout.py and test_upcasting_review.py, the events and the means to reshape them
in tests/support/upcasting.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from services.intake.domain import RefundRequest
from services.intake.tenants import ApiKey
from services.notify.messages.domain import Correspondence
from shared.application import ServiceApplication
from tests.support.upcasting import (
    CLASSES,
    CNY_129,
    applications_fixture,  # noqa: F401 (a fixture, used by name)
    correspondence,
    first_shape,
    loaded,
    requested,
    reshaped,
    stored,
)
from tests.unit.test_event_versions import stored_event_classes

# -- a 0.1.0 event (today's shape, no version) passes unchanged ------------------------------


@pytest.mark.parametrize(
    ("service", "aggregate", "cls"), CLASSES, ids=[c.__qualname__ for _, _, c in CLASSES]
)
def test_an_event_of_0_1_0_s_shape_loads_unchanged(
    applications: dict[str, ServiceApplication],
    service: str,
    aggregate: Callable[[], Aggregate],
    cls: type,
) -> None:
    app = applications[service]
    made = aggregate()
    originals = [e for e in made.pending_events if type(e) is cls]
    events = stored(app, made)
    (new,) = [e for e in events if e.topic == get_topic(cls)]
    version = cls.class_version  # type: ignore[attr-defined]
    assert f'"class_version":{version}'.encode() in new.state  # new events say their version
    unversioned = reshaped(app, events, cls, lambda state: None)
    event, _ = loaded(app, unversioned, cls)
    assert vars(event) == vars(originals[0])
    state = app.mapper.transcoder.decode(new.state)
    state.pop("class_version")
    before = dict(state)
    cls.upcast_v1_v2(state)
    assert state == before


# -- each first shape loads with the documented values ---------------------------------------


def test_intake_requested_of_a2f9b37(applications: dict[str, ServiceApplication]) -> None:
    event, refund = first_shape(
        applications["intake"],
        requested(),
        RefundRequest.Requested,
        drop=("items_named", "raised_by"),
        add={"request_key": "acme/k-1", "fingerprint": "f" * 64},
    )
    assert not hasattr(event, "request_key") and not hasattr(event, "fingerprint")
    # The first API filled in the whole order when a request named no items: unknown, so
    # only the amount is reserved.
    assert refund.items_named is False and refund.reserved_items == {}
    assert refund.raised_by is None
    assert refund.amount == CNY_129


def test_notify_contact_recorded_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    _, c = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.ContactRecorded,
        drop=("customer_id",),
    )
    assert c.contact.customer_id is None and c.contact.email == "li.wei@example.com"


def test_notify_step_scheduled_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, c = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.StepScheduled,
        add={"channel": "email"},  # scheduled per channel then
    )
    assert not hasattr(event, "channel")
    assert [s.facts for s in c.occurrences("approved")] == [
        {"amount": {"amount": 12900, "currency": "CNY"}}
    ]


def test_notify_attempt_started_of_427a8f2(applications: dict[str, ServiceApplication]) -> None:
    event, _ = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.AttemptStarted,
        drop=("claim",),
    )
    assert event.claim is None and event.attempt == 1


def test_notify_message_sent_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, c = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.MessageSent,
        drop=("customer_id", "title", "body"),
    )
    assert (event.customer_id, event.title, event.body) == (None, None, None)
    assert c.is_sent(event.step, "in_app")


# -- every versioned class is tested ---------------------------------------------------------


def test_every_versioned_class_has_its_first_shape_tested() -> None:
    """Every stored event class above version 1, in every service, is tested here (or, for
    intake's API keys, in tests/unit/test_api_key_events.py)."""
    versioned = {
        cls for cls in stored_event_classes().values() if getattr(cls, "class_version", 1) > 1
    }
    assert versioned == {cls for _, _, cls in CLASSES} | {ApiKey.Issued, ApiKey.Revoked}
