"""The cross-service story: causes first even across skewed clocks, no free text shown."""

from __future__ import annotations

from shared.timeline import Moment, ordered, summarize


def _m(service: str, position: int, time: str, event_id: str, cause: str | None = None) -> Moment:
    return Moment(service, position, time, f"{service}.{position}", "system:x", cause, event_id)


def test_an_effect_stamped_earlier_than_its_cause_still_comes_after_it() -> None:
    requested = _m("intake", 1, "2026-11-21T10:00:00.000000+00:00", "a")
    # review's clock runs 2 s behind intake's: by time alone, its reaction would come first
    opened = _m("review", 1, "2026-11-21T09:59:58.000000+00:00", "b", cause="a")
    noted = _m("intake", 2, "2026-11-21T09:59:59.000000+00:00", "c", cause="b")
    story = ordered([noted, opened, requested])
    assert [m.event_id for m in story] == ["a", "b", "c"]


def test_each_service_keeps_its_log_order_and_unrelated_moments_go_by_time() -> None:
    first = _m("payout", 5, "2026-11-21T10:00:03.000000+00:00", "p5")
    second = _m("payout", 6, "2026-11-21T10:00:01.000000+00:00", "p6")  # clock step back
    mail = _m("notify", 1, "2026-11-21T10:00:02.000000+00:00", "n1")
    assert [m.event_id for m in ordered([second, mail, first])] == ["n1", "p5", "p6"]


def test_summary_unwraps_money_and_hides_sealed_personal_data() -> None:
    data = {
        "amount": {"_type_": "money", "_data_": {"amount": 12900, "currency": "CNY"}},
        "rule": "auto_approve.within_limit",
        "reason": "pii:v1:key:abc",
        "description": "free text never shown",
        "missing": [],
    }
    assert summarize(data) == {
        "amount": {"amount": 12900, "currency": "CNY"},
        "rule": "auto_approve.within_limit",
        "reason": "[personal data]",
    }
