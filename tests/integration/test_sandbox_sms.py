"""The sandbox SMS provider served for real by uvicorn, driven by notify's HttpSmsProvider."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.sms import MESSAGES_FILE, SmsSandbox
from services.notify.messages.sms import (
    HttpSmsProvider,
    SmsConflict,
    SmsRejected,
    SmsUnavailable,
    measure,
)

PHONE = "+8613812345678"
TEXT = "【退款通知】¥129.00已原路退至您的微信支付，预计2026年11月5日前到账。"


@pytest.fixture
def sms(tmp_path: Path) -> Iterator[SmsSandbox]:
    with SmsSandbox(tmp_path) as sandbox:
        yield sandbox


@pytest.fixture
def provider(sms: SmsSandbox) -> Iterator[HttpSmsProvider]:
    client = HttpSmsProvider(sms.url, timeout=5)
    yield client
    client.close()


def test_a_message_is_accepted_and_listed(sms: SmsSandbox, provider: HttpSmsProvider) -> None:
    message_id = provider.send(PHONE, TEXT, idempotency_key="notif-1")
    long_text = "Refunds: " + "x" * 200

    assert message_id.startswith("sms_")
    other = provider.send("+14155550123", long_text, idempotency_key="notif-2")
    listed = sms.messages()
    assert [m["id"] for m in listed] == [message_id, other]
    first = listed[0]
    assert (first["to"], first["text"], first["status"]) == (PHONE, TEXT, "accepted")
    assert first["idempotency_key"] == "notif-1" and first["received_at"].endswith("Z")
    # The provider counts segments on its own; notify's measure agrees with it.
    assert [m["segments"] for m in listed] == [1, 2]
    assert measure(TEXT).segments == 1 and measure(long_text).segments == 2
    assert [m["id"] for m in sms.messages(to=PHONE)] == [message_id]


def test_the_same_key_twice_sends_one_sms(sms: SmsSandbox, provider: HttpSmsProvider) -> None:
    first = provider.send(PHONE, TEXT, idempotency_key="notif-1")
    again = provider.send(PHONE, TEXT, idempotency_key="notif-1")

    assert again == first
    assert len(sms.messages()) == 1
    replay = httpx.post(
        f"{sms.url}/v1/messages",
        json={"to": PHONE, "text": TEXT},
        headers={"Idempotency-Key": "notif-1"},
    )
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first


def test_the_same_key_with_another_text_is_a_conflict(
    sms: SmsSandbox, provider: HttpSmsProvider
) -> None:
    provider.send(PHONE, TEXT, idempotency_key="notif-1")

    with pytest.raises(SmsConflict) as error:
        provider.send(PHONE, TEXT + "!", idempotency_key="notif-1")
    assert error.value.status == 409
    with pytest.raises(SmsConflict):
        provider.send("+8613900000000", TEXT, idempotency_key="notif-1")
    assert [m["text"] for m in sms.messages()] == [TEXT]


@pytest.mark.parametrize(
    ("to", "text"), [("13812345678", TEXT), ("+86 138 1234 5678", TEXT), (PHONE, "  ")]
)
def test_a_bad_number_or_empty_text_is_rejected(
    sms: SmsSandbox, provider: HttpSmsProvider, to: str, text: str
) -> None:
    with pytest.raises(SmsRejected) as error:
        provider.send(to, text, idempotency_key="notif-1")

    assert not isinstance(error.value, SmsConflict) and error.value.status == 400
    answer = httpx.post(
        f"{sms.url}/v1/messages", json={"to": to, "text": text}, headers={"Idempotency-Key": "k"}
    )
    assert answer.headers["content-type"] == "application/problem+json"
    assert sms.messages() == []


def test_numbers_switched_to_reject_are_refused(sms: SmsSandbox, provider: HttpSmsProvider) -> None:
    sms.control(reject=[PHONE])

    with pytest.raises(SmsRejected):
        provider.send(PHONE, TEXT, idempotency_key="notif-1")
    assert provider.send("+8613900000000", TEXT, idempotency_key="notif-2").startswith("sms_")
    sms.control(reset=True)
    assert provider.send(PHONE, TEXT, idempotency_key="notif-1").startswith("sms_")
    assert [m["to"] for m in sms.messages()] == ["+8613900000000", PHONE]


def test_injected_failures_are_unavailable_with_retry_after(
    sms: SmsSandbox, provider: HttpSmsProvider
) -> None:
    state = sms.control(fail_next=2, status=503, retry_after=7)
    assert (state["fail_next"], state["status"], state["retry_after"]) == (2, 503, 7)

    for _ in range(2):
        with pytest.raises(SmsUnavailable) as error:
            provider.send(PHONE, TEXT, idempotency_key="notif-1")
        assert (error.value.status, error.value.retry_after) == (503, 7.0)
    assert sms.messages() == []
    first = provider.send(PHONE, TEXT, idempotency_key="notif-1")
    assert [m["id"] for m in sms.messages()] == [first]

    sms.control(fail_next=1, status=429, retry_after=None)
    with pytest.raises(SmsUnavailable) as error:
        provider.send(PHONE, TEXT, idempotency_key="notif-2")
    assert (error.value.status, error.value.retry_after) == (429, None)


def test_a_timed_out_send_retried_with_its_key_is_still_one_sms(sms: SmsSandbox) -> None:
    # The provider accepts, then answers too late: the client cannot know the SMS went out.
    sms.control(delay_ms=1500)
    impatient = HttpSmsProvider(sms.url, timeout=0.3)
    try:
        with pytest.raises(SmsUnavailable):
            impatient.send(PHONE, TEXT, idempotency_key="notif-1")
        sms.control(delay_ms=0)
        time.sleep(1.3)  # let the slow answer finish before the retry
        again = impatient.send(PHONE, TEXT, idempotency_key="notif-1")
    finally:
        impatient.close()

    assert [m["id"] for m in sms.messages()] == [again]


def test_a_provider_that_is_down_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = HttpSmsProvider(f"http://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(SmsUnavailable) as error:
            provider.send(PHONE, TEXT, idempotency_key="notif-1")
    finally:
        provider.close()
    assert error.value.status is None and error.value.retry_after is None


def test_messages_and_their_keys_survive_a_restart(tmp_path: Path) -> None:
    with SmsSandbox(tmp_path) as sms:
        provider = HttpSmsProvider(sms.url)
        first = provider.send(PHONE, TEXT, idempotency_key="notif-1")
        provider.close()
    assert (tmp_path / MESSAGES_FILE).read_text(encoding="utf-8").count("\n") == 1

    with SmsSandbox(tmp_path) as sms:
        provider = HttpSmsProvider(sms.url)
        assert provider.send(PHONE, TEXT, idempotency_key="notif-1") == first
        second = provider.send(PHONE, "Refunds: second", idempotency_key="notif-2")
        provider.close()
        assert [m["id"] for m in sms.messages()] == [first, second]


def test_an_api_key_is_required_when_configured(tmp_path: Path) -> None:
    with SmsSandbox(tmp_path, api_key="sms-test-key") as sms:
        anonymous = HttpSmsProvider(sms.url)
        keyed = HttpSmsProvider(sms.url, "sms-test-key")
        try:
            with pytest.raises(SmsRejected) as error:
                anonymous.send(PHONE, TEXT, idempotency_key="notif-1")
            assert error.value.status == 401
            assert keyed.send(PHONE, TEXT, idempotency_key="notif-1").startswith("sms_")
        finally:
            anonymous.close()
            keyed.close()
        assert httpx.get(f"{sms.url}/v1/messages").status_code == 401
        assert len(sms.messages()) == 1


def test_a_missing_idempotency_key_is_refused(sms: SmsSandbox) -> None:
    answer = httpx.post(f"{sms.url}/v1/messages", json={"to": PHONE, "text": TEXT})

    assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["detail"]
    assert sms.messages() == []
