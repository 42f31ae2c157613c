"""A service that declares what it reacts to must react to nothing else: the consumer passes
every other type over without running the reaction (shared.application, `reacts_to`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import Tracking

from services.intake.application import IntakeApplication
from services.payout.application import PayoutApplication
from shared.application import Reaction, ServiceApplication
from shared.contracts import EVENT_TYPES, IntegrationEvent
from tests.support.payout_gateway import message as cloud_event

DECLARING = [IntakeApplication, PayoutApplication]


@pytest.fixture(params=DECLARING, ids=lambda cls: cls.__name__)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceApplication]:
    made: ServiceApplication = request.param(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "s.db")}
    )
    yield made
    made.close()


def test_what_it_passes_over_its_reaction_would_not_have_stored(app: ServiceApplication) -> None:
    assert app.reacts_to  # declared, and not empty
    others = [kind for kind in EVENT_TYPES.values() if kind not in app.reacts_to]
    assert others
    for kind in others:
        # Fields unset: a reaction that so much as looked at this type would fail here.
        payload: IntegrationEvent = kind.model_construct(refund_id="rf_" + "0" * 32, tenant="t")
        message = cloud_event(payload, source="upstream")
        processing = Reaction(Tracking(application_name="upstream", notification_id=1))
        app.react(payload, message, processing)
        assert processing.events == [], kind
        assert not app.reacts(message), kind
