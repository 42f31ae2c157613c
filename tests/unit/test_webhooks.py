"""Unit tests of the webhook building blocks, checked against the reference `standardwebhooks`."""

from __future__ import annotations

import base64
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError_

from services.notify.webhooks import retries, signing
from services.notify.webhooks.retries import (
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    disable_after,
    excerpt,
    is_gone,
    next_attempt_delay,
    parse_retry_after,
)
from services.notify.webhooks.signing import (
    WebhookVerificationError,
    headers,
    new_secret,
    sign,
    signatures,
    verify,
)

# The example of the Standard Webhooks specification.
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = json.dumps({"type": "refund.paid", "data": {"refund_id": "rf_1", "note": "退款"}}).encode()


def reference_verify(secret: str, sent: dict[str, str], body: bytes) -> None:
    Webhook(secret).verify(body, sent, json_parse=False)


# --- secrets and signatures ----------------------------------------------------------------


def test_spec_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    reference = Webhook(SPEC_SECRET).sign(
        SPEC_ID, datetime.fromtimestamp(SPEC_TIMESTAMP, UTC), SPEC_BODY.decode()
    )
    assert reference == SPEC_SIGNATURE
    verify(
        SPEC_SECRET,
        {
            "webhook-id": SPEC_ID,
            "webhook-timestamp": str(SPEC_TIMESTAMP),
            "webhook-signature": SPEC_SIGNATURE,
        },
        SPEC_BODY,
        now=SPEC_TIMESTAMP,
    )


def test_new_secret_format() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


def test_our_headers_pass_the_reference_verifier() -> None:
    secret = new_secret()
    now = int(time.time())
    sent = headers("msg_2a", now, BODY, [secret])
    assert set(sent) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert sent["webhook-id"] == "msg_2a"
    assert sent["webhook-timestamp"] == str(now)
    reference_verify(secret, sent, BODY)
    verify(secret, sent, BODY, now=now)


def test_rotation_signs_with_every_secret_and_each_verifies() -> None:
    old, new = new_secret(), new_secret()
    now = int(time.time())
    sent = headers("msg_rot", now, BODY, [old, new])
    parts = sent["webhook-signature"].split(" ")
    assert len(parts) == 2
    assert all(part.startswith("v1,") for part in parts)
    assert sent["webhook-signature"] == signatures([old, new], "msg_rot", now, BODY)
    for secret in (old, new):
        reference_verify(secret, sent, BODY)
        verify(secret, sent, BODY, now=now)
    stranger = new_secret()
    with pytest.raises(ReferenceError_):
        reference_verify(stranger, sent, BODY)
    with pytest.raises(WebhookVerificationError):
        verify(stranger, sent, BODY, now=now)


def test_tampering_is_refused() -> None:
    secret = new_secret()
    now = int(time.time())
    sent = headers("msg_t", now, BODY, [secret])
    tampered = BODY.replace(b"rf_1", b"rf_2")
    for check in (
        lambda: verify(secret, sent, tampered, now=now),
        lambda: verify(secret, {**sent, "webhook-id": "msg_u"}, BODY, now=now),
        lambda: verify(secret, {**sent, "webhook-timestamp": str(now + 1)}, BODY, now=now),
    ):
        with pytest.raises(WebhookVerificationError):
            check()
    with pytest.raises(ReferenceError_):
        reference_verify(secret, sent, tampered)


def test_verify_header_names_are_case_insensitive() -> None:
    secret = new_secret()
    sent = headers("msg_c", 1000, BODY, [secret])
    verify(secret, {name.title(): value for name, value in sent.items()}, BODY, now=1000)


@pytest.mark.parametrize(
    ("drift", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)]
)
def test_verify_timestamp_tolerance(drift: int, ok: bool) -> None:
    secret = new_secret()
    sent = headers("msg_ts", 10_000, BODY, [secret])
    if ok:
        verify(secret, sent, BODY, now=10_000 + drift)
    else:
        with pytest.raises(WebhookVerificationError):
            verify(secret, sent, BODY, now=10_000 + drift)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"webhook-id": "m", "webhook-timestamp": "1000"},
        {"webhook-id": "m", "webhook-timestamp": "x", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": "1000", "webhook-signature": "v1,!!!"},
        {"webhook-id": "m", "webhook-timestamp": "1000", "webhook-signature": "v2,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": "1000", "webhook-signature": "garbage"},
        {"webhook-id": "a b", "webhook-timestamp": "1000", "webhook-signature": "v1,AAAA"},
    ],
)
def test_verify_refuses_malformed_headers(bad: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), bad, BODY, now=1000)


def test_bad_inputs_to_signing() -> None:
    with pytest.raises(ValueError):
        sign("whsec_not base64!", "m", 1, BODY)
    with pytest.raises(ValueError):
        sign("whsec_" + base64.b64encode(b"short").decode(), "m", 1, BODY)
    with pytest.raises(ValueError):
        sign(new_secret(), "id\r\nx-injected: 1", 1, BODY)
    with pytest.raises(ValueError):
        signatures([], "m", 1, BODY)
    with pytest.raises(TypeError):
        signatures(new_secret(), "m", 1, BODY)


def test_secret_without_prefix_is_the_same_key() -> None:
    assert sign(SPEC_SECRET.removeprefix("whsec_"), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == (
        SPEC_SIGNATURE
    )


# --- retry schedule ------------------------------------------------------------------------


def test_schedule_is_the_specs() -> None:
    assert RETRY_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert MAX_ATTEMPTS == 8


def test_delays_stay_within_jitter_and_give_up_after_the_last() -> None:
    rng = random.Random(6)
    for _ in range(200):
        for attempt, base in enumerate(RETRY_SCHEDULE):
            delay = next_attempt_delay(attempt, rng, None)
            assert delay is not None
            assert delay >= 0
            assert base * 0.9 <= delay <= base * 1.1
        assert next_attempt_delay(MAX_ATTEMPTS, rng, None) is None
        assert next_attempt_delay(MAX_ATTEMPTS + 5, rng, 10.0) is None
    assert next_attempt_delay(0, rng, None) == 0


def test_delays_are_jittered_and_reproducible() -> None:
    first = [next_attempt_delay(3, random.Random(1), None) for _ in range(3)]
    assert len(set(first)) == 1  # same seed, same delay
    rng = random.Random(1)
    spread = {next_attempt_delay(3, rng, None) for _ in range(50)}
    assert len(spread) > 40


class Extreme:
    """A random source at one end of its range."""

    def __init__(self, sign: float) -> None:
        self.sign = sign

    def uniform(self, a: float, b: float, /) -> float:
        return a if self.sign < 0 else b


def test_jitter_bounds_exactly() -> None:
    assert next_attempt_delay(1, Extreme(-1), None) == pytest.approx(4.5)
    assert next_attempt_delay(1, Extreme(+1), None) == pytest.approx(5.5)
    assert next_attempt_delay(0, Extreme(-1), None) == 0


def test_retry_after_wins_when_longer() -> None:
    rng = random.Random(0)
    assert next_attempt_delay(1, rng, 120.0) == 120.0
    short = next_attempt_delay(4, rng, 1.0)
    assert short is not None and short >= 7200 * 0.9
    # A receiver cannot push us beyond the schedule's longest step.
    assert next_attempt_delay(1, rng, 10 * 86400.0) == 36000
    # Nonsense values are ignored.
    for nonsense in (float("nan"), float("inf"), -5.0):
        delay = next_attempt_delay(1, Extreme(+1), nonsense)
        assert delay == pytest.approx(5.5)
    with pytest.raises(ValueError):
        next_attempt_delay(-1, rng, None)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after("Sun, 22 Nov 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-3", now) is None


# --- endpoint bookkeeping ------------------------------------------------------------------


def test_disable_after_period() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    period = timedelta(days=5)
    assert not disable_after(None, now, period)
    assert not disable_after(now - timedelta(days=4, hours=23), now, period)
    assert disable_after(now - period, now, period)
    assert disable_after(now - timedelta(days=6), now, period)


def test_is_gone() -> None:
    assert is_gone(410)
    assert not any(is_gone(status) for status in (200, 404, 429, 500, 503))


def test_excerpt() -> None:
    assert excerpt(b"ok") == "ok"
    assert excerpt(b"") == ""
    assert excerpt(b"line1\r\nline2\tx") == "line1  line2 x"
    assert excerpt(b"\xff\xfebad\x00") == "\ufffd\ufffdbad\ufffd"
    long = excerpt(b"a" * 10_000)
    assert len(long) == 256 and long.endswith("…")
    assert len(excerpt("退".encode() * 1000, limit=10)) == 10
    # A multibyte character cut at the byte limit does not raise.
    assert excerpt("退款".encode()[:4], limit=256) == "退\ufffd"
    assert excerpt(b"abcdef", limit=3) == "ab…"
    assert excerpt(b"abc", limit=0) == ""


@pytest.mark.parametrize("module", [signing, retries])
def test_module_is_stdlib_only(module: ModuleType) -> None:
    source = Path(str(module.__file__)).read_text(encoding="utf-8")
    for forbidden in ("fastapi", "httpx", "pydantic"):
        assert f"import {forbidden}" not in source
        assert f"from {forbidden}" not in source
