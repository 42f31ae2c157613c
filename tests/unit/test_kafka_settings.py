"""The consumer group session comes from the settings, heartbeats at a third of it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.kafka import new_consumer
from shared.settings import ServiceSettings


@pytest.mark.parametrize(("session_ms", "heartbeat_ms"), [(6_000, 2_000), (2_000, 666)])
async def test_a_consumer_takes_its_session_from_the_settings_and_heartbeats_a_third_of_it(
    session_ms: int, heartbeat_ms: int
) -> None:
    settings = ServiceSettings(kafka_session_timeout_ms=session_ms)
    consumer = new_consumer(settings, ["refunds.intake.v1"], "refunds-review", "review-consumer")
    assert consumer._session_timeout_ms == session_ms
    assert consumer._heartbeat_interval_ms == heartbeat_ms


def test_production_default_is_the_least_apache_kafka_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The suite sets its own shorter session (tests/conftest.py); the default is what ships.
    monkeypatch.delenv("REFUNDS_KAFKA_SESSION_TIMEOUT_MS", raising=False)
    assert ServiceSettings().kafka_session_timeout_ms == 6_000


def test_a_session_under_a_second_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError) as refused:
        ServiceSettings(kafka_session_timeout_ms=500)
    assert refused.value.errors()[0]["loc"] == ("kafka_session_timeout_ms",)
