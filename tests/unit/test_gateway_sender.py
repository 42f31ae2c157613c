"""The gateway's lean callback sender: statuses, kept-alive connections, receivers that close."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sandbox.gateway.sender import CallbackSender, SendError

Answer = Callable[[int], bytes]  # the n-th request on a connection -> the raw response
Serve = Callable[["Receiver"], Awaitable[str]]  # starts a receiver, answers its URL


class Receiver:
    """A raw HTTP/1.1 receiver: answers each request with `answer`, counts connections and
    requests, and closes a connection after `requests_per_connection` requests."""

    def __init__(self, answer: Answer, requests_per_connection: int = 100) -> None:
        self.answer = answer
        self.limit = requests_per_connection
        self.connections = 0
        self.bodies: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for n in range(self.limit):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.bodies.append(await reader.readexactly(length))
                writer.write(self.answer(n))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(receiver: Receiver) -> str:
        server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/callbacks"

    yield start
    for server in servers:
        server.close()


def ok(_: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_statuses_come_back_over_one_kept_alive_connection(serve: Serve) -> None:
    receiver = Receiver(
        lambda n: ok(n) if n == 0 else b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
    )
    url = await serve(receiver)
    sender = CallbackSender(timeout=2)

    assert await sender.post(url, b'{"id":"cb_1"}', {"Content-Type": "application/json"}) == 200
    assert await sender.post(url, b'{"id":"cb_2"}', {}) == 500

    assert receiver.connections == 1
    assert receiver.bodies == [b'{"id":"cb_1"}', b'{"id":"cb_2"}']
    await sender.close()


async def test_a_connection_the_receiver_closed_while_idle_is_replaced(serve: Serve) -> None:
    receiver = Receiver(ok, requests_per_connection=1)
    url = await serve(receiver)
    sender = CallbackSender(timeout=2)

    assert await sender.post(url, b"one", {}) == 200
    await asyncio.sleep(0.05)  # the receiver has closed the idle connection by now
    assert await sender.post(url, b"two", {}) == 200

    assert receiver.connections == 2
    assert receiver.bodies == [b"one", b"two"]
    await sender.close()


async def test_an_answer_without_content_length_ends_the_connection(serve: Serve) -> None:
    chunked = b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    receiver = Receiver(lambda _: chunked)
    url = await serve(receiver)
    sender = CallbackSender(timeout=2)

    assert await sender.post(url, b"one", {}) == 204
    assert await sender.post(url, b"two", {}) == 204

    assert receiver.connections == 2
    await sender.close()


async def test_an_unreachable_receiver_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    sender = CallbackSender(timeout=2)

    with pytest.raises(SendError) as raised:
        await sender.post(f"http://127.0.0.1:{port}/callbacks", b"{}", {})

    assert raised.value.name == "ConnectError"


async def test_a_silent_receiver_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/callbacks"
    sender = CallbackSender(timeout=0.2)

    with pytest.raises(SendError) as raised:
        await sender.post(url, b"{}", {})

    assert raised.value.name == "ReadTimeout"
    server.close()
