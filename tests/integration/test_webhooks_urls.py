"""Integration tests of webhook endpoint URLs: internal addresses are refused at
registration and rechecked before sending; HTTPS goes to the vetted address and checks the
host's certificate."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.receiver import Receiver
from tests.support.webhooks import (
    ACME,
    WAIT,
    World,
    eventually,
    receiver_fixture,  # noqa: F401 (a fixture, used by name)
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    verify,
    world_fixture,  # noqa: F401 (a fixture, used by name)
)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://[::1]/hook",
    ],
)
async def test_internal_urls_are_refused_at_registration(world: World, url: str) -> None:
    world.app.webhooks.allow_private = False
    refused = await world.client.post(
        "/v1/webhook_endpoints", json={"url": url, "event_types": ["*"]}, headers=ACME
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    (error,) = refused.json()["errors"]
    assert error["field"] == "url" and error["code"] == "unsafe_url"
    listed = await world.client.get("/v1/webhook_endpoints", headers=ACME)
    assert listed.json()["data"] == []


async def test_a_url_changed_to_an_internal_one_is_refused_and_rechecked_before_sending(
    world: World,
) -> None:
    endpoint = await world.register()
    world.app.webhooks.allow_private = False
    changed = await world.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}",
        json={"url": "https://192.168.1.10/hook"},
        headers=ACME,
    )
    assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "url"
    # Registered while private addresses were allowed, delivered after they no longer are.
    await world.event()
    async with world.delivering():

        async def refused() -> bool:
            log = await world.deliveries(endpoint["id"])
            attempts = log["data"][0]["attempts"] if log["data"] else []
            return len(attempts) >= 2

        await eventually(refused, "attempts refused before sending")

    assert world.receiver.requests == []
    attempt = (await world.deliveries(endpoint["id"]))["data"][0]["attempts"][0]
    assert attempt["error"] == "unsafe URL: scheme must be https, not http"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for `hooks.test`: the server's context, and a client's that trusts it."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.test"),
            *("-addext", "subjectAltName=DNS:hooks.test"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def test_https_goes_to_the_vetted_address_and_checks_the_hosts_certificate(
    world: World, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = tls
    asked: list[str] = []

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        # `hooks.test` exists only here: the request can only reach the address vetted here.
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    world.app.webhooks.resolve = resolve
    with Receiver(tls=server_tls, host_name="hooks.test") as secure:
        endpoint = await world.register(url=secure.url)
        await world.event()
        async with world.delivering(client_tls):
            (received,) = await asyncio.to_thread(secure.wait_for, 1, WAIT)

    assert received.headers["host"] == f"hooks.test:{secure.port}"
    verify(endpoint["secret"], received)
    assert asked.count("hooks.test") >= 2  # at registration and again before the attempt
