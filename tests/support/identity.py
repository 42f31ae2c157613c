"""The sandbox identity provider for tests: served on a free port in a thread, and a person's
sign-in through it with authlib's OAuth 2 client (code flow with PKCE), as the console does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client

from sandbox.identity import create_app

CLIENT_ID = "refunds-console"
CLIENT_SECRET = "dev-console-secret"
CALLBACK = "http://127.0.0.1:8005/auth/callback"
WAIT = 5.0


@contextmanager
def serve_identity(data_dir: Path) -> Iterator[str]:
    """Serve the provider on a free port in a thread; yield its base URL (its issuer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(data_dir, issuer=url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "identity provider did not start"
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        sock.close()


def hidden_field(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start_at = html.index(marker) + len(marker)
    return html[start_at : html.index('"', start_at)]


def sign_in(issuer: str, username: str) -> dict[str, Any]:
    """The token response a person gets by signing in (password `demo`) in a fresh browser."""
    client = OAuth2Client(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope="openid profile",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    url, _ = client.create_authorization_url(
        f"{issuer}/authorize", code_verifier=verifier, nonce=generate_token(20)
    )
    with httpx.Client(timeout=WAIT) as browser:
        form = browser.get(url)
        assert form.status_code == 200, form.text
        answer = browser.post(
            f"{issuer}/authorize",
            data={
                "handle": hidden_field(form.text, "handle"),
                "username": username,
                "password": "demo",
            },
        )
    assert answer.status_code == 302, answer.text
    token = client.fetch_token(
        f"{issuer}/token", authorization_response=answer.headers["location"], code_verifier=verifier
    )
    return dict(token)
