"""Notify's SMS adapter without a network: segment counting, phone masking, answer mapping."""

from __future__ import annotations

import json
import socketserver
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from services.notify.messages.sms import (
    HttpSmsProvider,
    SmsConflict,
    SmsRejected,
    SmsUnavailable,
    mask_phone,
    measure,
)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+8613812345678", "+86 138****5678"),
        ("+14155550123", "+1 41****0123"),
        ("+442079460958", "+44 20****0958"),
        ("+35312345678", "+353 ****5678"),
        ("13812345678", "138****5678"),
        ("+861234", "+86 ****"),
        ("", "***"),
    ],
)
def test_a_masked_phone_is_recognisable_but_hides_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters take two places
        ("退" * 70, "UCS-2", 70, 1),
        ("退" * 71, "UCS-2", 71, 2),
        ("a" * 159 + "—", "UCS-2", 160, 3),  # one character outside GSM turns it all UCS-2
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units each
        ("", "GSM-7", 0, 0),
    ],
)
def test_texts_are_measured_as_the_network_carries_them(
    text: str, encoding: str, units: int, segments: int
) -> None:
    length = measure(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


def provider_answering(response: httpx.Response, seen: list[httpx.Request]) -> HttpSmsProvider:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    return HttpSmsProvider("http://sms.test/", "key-1", transport=httpx.MockTransport(answer))


def test_the_key_and_credentials_travel_as_headers() -> None:
    seen: list[httpx.Request] = []
    provider = provider_answering(httpx.Response(201, json={"id": "sms_1"}), seen)

    assert provider.send("+8613812345678", "hi", idempotency_key="n-1") == "sms_1"
    (request,) = seen
    assert request.url.path == "/v1/messages"
    assert request.headers["Idempotency-Key"] == "n-1"
    assert request.headers["Authorization"] == "Bearer key-1"
    assert request.read() == b'{"to":"+8613812345678","text":"hi"}'


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, SmsRejected),
        (401, SmsRejected),
        (404, SmsRejected),
        (422, SmsRejected),
        (409, SmsConflict),
        (408, SmsUnavailable),
        (425, SmsUnavailable),
        (429, SmsUnavailable),
        (500, SmsUnavailable),
        (503, SmsUnavailable),
    ],
)
def test_answers_map_to_rejected_or_unavailable(status: int, error: type[Exception]) -> None:
    provider = provider_answering(httpx.Response(status, json={"detail": "x"}), [])

    with pytest.raises(error) as raised:
        provider.send("+8613812345678", "hi", idempotency_key="n-1")
    assert type(raised.value) is error
    assert raised.value.status == status  # type: ignore[attr-defined]


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    seconds = httpx.Response(429, headers={"Retry-After": "12"})
    with pytest.raises(SmsUnavailable) as raised:
        provider_answering(seconds, []).send("+8613812345678", "hi", idempotency_key="n")
    assert raised.value.retry_after == 12.0

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    dated = httpx.Response(503, headers={"Retry-After": later})
    with pytest.raises(SmsUnavailable) as raised:
        provider_answering(dated, []).send("+8613812345678", "hi", idempotency_key="n")
    assert raised.value.retry_after is not None and 100 < raised.value.retry_after <= 120


def test_an_accepted_answer_without_an_id_is_unavailable_so_it_is_retried() -> None:
    provider = provider_answering(httpx.Response(201, json={"status": "accepted"}), [])

    with pytest.raises(SmsUnavailable):
        provider.send("+8613812345678", "hi", idempotency_key="n-1")


def test_a_connection_the_provider_closed_while_idle_is_retried_on_a_new_one() -> None:
    # A provider that answers one message per connection, then closes it without saying so
    # (as one whose idle timeout ran out between two messages).
    connections: list[bytes] = []

    class OneAnswerPerConnection(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            received = b""
            while b"\r\n\r\n" not in received:
                received += self.request.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += self.request.recv(65536)
            connections.append(body)
            answer = json.dumps({"id": f"sms_{len(connections)}"}).encode()
            self.request.sendall(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), OneAnswerPerConnection) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        provider = HttpSmsProvider(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
        try:
            first = provider.send("+8613812345678", "hi", idempotency_key="n-1")
            second = provider.send("+8613812345678", "hi again", idempotency_key="n-2")
        finally:
            provider.close()
            server.shutdown()

    assert (first, second) == ("sms_1", "sms_2")
    assert [json.loads(body)["text"] for body in connections] == ["hi", "hi again"]
