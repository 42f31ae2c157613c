"""The sandbox identity provider served by uvicorn, driven by authlib's OAuth 2 client (code
flow with PKCE, refresh) and checked with joserfc against its published JWKS: nothing here
uses the provider's own helpers to verify what it says.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.identity import (
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    WAIT,
    hidden_field,
    serve_identity,
)


@dataclass
class Provider:
    url: str
    http: httpx.Client  # the "browser": keeps the provider's cookie, follows no redirect

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(httpx.get(f"{self.url}/jwks").json())

    def client(self, **extra: Any) -> OAuth2Client:
        options: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "openid profile",
            "redirect_uri": CALLBACK,
            "code_challenge_method": "S256",
        }
        return OAuth2Client(**(options | extra))


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    with serve_identity(tmp_path) as url, httpx.Client(base_url=url, timeout=WAIT) as http:
        yield Provider(url, http)


@dataclass
class Started:
    client: OAuth2Client
    verifier: str
    nonce: str
    state: str
    form: httpx.Response


def start(provider: Provider, **extra: Any) -> Started:
    """Ask authlib for an authorization URL and open it in the browser."""
    client = provider.client(**extra)
    verifier, nonce = generate_token(64), generate_token(20)
    url, state = client.create_authorization_url(
        f"{provider.url}/authorize", code_verifier=verifier, nonce=nonce
    )
    return Started(client, verifier, nonce, state, provider.http.get(url))


def sign_in(provider: Provider, started: Started, username: str) -> str:
    """Fill in the sign-in form; the redirect's Location (the callback with code & state)."""
    handle = hidden_field(started.form.text, "handle")
    answer = provider.http.post(
        "/authorize", data={"handle": handle, "username": username, "password": "demo"}
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def verify(provider: Provider, token: str, **expected: Any) -> dict[str, Any]:
    decoded = jwt.decode(token, provider.jwks(), algorithms=["RS256"])
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": provider.url},
        exp={"essential": True},
        **{name: {"essential": True, "value": value} for name, value in expected.items()},
    )
    registry.validate(decoded.claims)
    return {"header": decoded.header, **decoded.claims}


def signed_in(provider: Provider, username: str = "ann") -> tuple[Started, dict[str, Any]]:
    started = start(provider)
    location = sign_in(provider, started, username)
    token = started.client.fetch_token(
        f"{provider.url}/token", authorization_response=location, code_verifier=started.verifier
    )
    return started, dict(token)


def test_discovery_names_every_endpoint_and_the_key(provider: Provider) -> None:
    config = provider.http.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == provider.url
    for name, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/logout"),
    ]:
        assert config[name] == provider.url + path
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(config["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    keys = provider.http.get(config["jwks_uri"]).json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["kid"]
    assert "d" not in keys[0], "the private part must never be published"
    assert provider.http.get("/healthz").json() == {"status": "ok"}


def test_code_flow_with_pkce_gives_verifiable_tokens(provider: Provider) -> None:
    started = start(provider)
    form = started.form
    assert form.status_code == 200 and "text/html" in form.headers["content-type"]
    assert "script-src" not in form.headers["content-security-policy"]
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert "<script" not in form.text
    for username, role in [("ann", "reviewer"), ("wang", "senior_reviewer"), ("wu", "warehouse")]:
        assert username in form.text and role in form.text

    location = sign_in(provider, started, "wang")
    callback = urlsplit(location)
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK
    assert parse_qs(callback.query)["state"] == [started.state]

    token = started.client.fetch_token(
        f"{provider.url}/token", authorization_response=location, code_verifier=started.verifier
    )
    assert token["token_type"] == "Bearer" and token["expires_in"] == 900
    assert token["refresh_token"]
    access = verify(provider, token["access_token"], aud="refunds")
    assert access["header"]["typ"] == "at+jwt" and access["header"]["kid"]
    assert access["client_id"] == CLIENT_ID and "openid" in access["scope"].split()
    assert access["roles"] == ["senior_reviewer"] and access["preferred_username"] == "wang"
    assert access["name"] and access["locale"] == "zh-CN"
    assert access["zoneinfo"] == "Asia/Shanghai"
    assert access["exp"] - access["iat"] == 900 and access["jti"]
    identity = verify(provider, token["id_token"], aud=CLIENT_ID, nonce=started.nonce)
    assert identity["sub"] == access["sub"] and identity["preferred_username"] == "wang"


def test_refresh_userinfo_and_logout(provider: Provider) -> None:
    started, token = signed_in(provider, "zhao")
    client = started.client
    client.token = token
    refreshed = client.refresh_token(f"{provider.url}/token")
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert verify(provider, refreshed["access_token"], aud="refunds")["roles"] == ["finance"]
    # The spent refresh token is refused: each refresh gives a new one.
    with pytest.raises(OAuthError) as spent:
        client.refresh_token(f"{provider.url}/token", refresh_token=token["refresh_token"])
    assert spent.value.error == "invalid_grant"

    info = httpx.get(
        f"{provider.url}/userinfo",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
    )
    assert info.status_code == 200
    assert info.json()["preferred_username"] == "zhao" and info.json()["roles"] == ["finance"]
    anonymous = httpx.get(f"{provider.url}/userinfo", headers={"Authorization": "Bearer nope"})
    assert anonymous.status_code == 401
    assert "invalid_token" in anonymous.headers["www-authenticate"]

    # Signed in at the provider: a second sign-in skips the form.
    again = start(provider)
    assert again.form.status_code == 302 and "code=" in again.form.headers["location"]

    out = provider.http.get(
        "/logout",
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:8005/",
            "state": "bye",
        },
    )
    assert out.status_code == 302
    assert out.headers["location"] == "http://127.0.0.1:8005/?state=bye"
    after = start(provider)
    assert after.form.status_code == 200 and 'name="password"' in after.form.text


def test_bad_pkce_verifier_reused_code_and_wrong_redirect_are_refused(
    provider: Provider,
) -> None:
    token_url = f"{provider.url}/token"
    started = start(provider)
    location = sign_in(provider, started, "ann")
    with pytest.raises(OAuthError) as bad_pkce:
        started.client.fetch_token(
            token_url, authorization_response=location, code_verifier=generate_token(64)
        )
    assert bad_pkce.value.error == "invalid_grant"
    # The code was spent on the failed attempt; the right verifier is too late now.
    with pytest.raises(OAuthError) as reused:
        started.client.fetch_token(
            token_url, authorization_response=location, code_verifier=started.verifier
        )
    assert reused.value.error == "invalid_grant"

    # A replayed code also revokes the refresh token its first redemption gave.
    provider.http.cookies.clear()  # another browser
    started, _ = signed_in(provider, "bob")
    code = parse_qs(urlsplit(_last_code(provider, started)).query)["code"][0]
    first = _redeem(provider, code, started.verifier)
    assert first.status_code == 200
    second = _redeem(provider, code, started.verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    revoked = httpx.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"

    # The redirect_uri at the token endpoint must be the one the code was issued for.
    started = start(provider, redirect_uri="http://localhost:9999/auth/callback")
    assert started.form.status_code == 302  # bob is still signed in at the provider
    location = started.form.headers["location"]
    assert location.startswith("http://localhost:9999/auth/callback?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    wrong = _redeem(provider, code, started.verifier, redirect_uri=CALLBACK)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def _last_code(provider: Provider, started: Started) -> str:
    """A fresh code for the signed-in person (the provider session skips the form)."""
    url, _ = started.client.create_authorization_url(
        f"{provider.url}/authorize", code_verifier=started.verifier, nonce="n"
    )
    answer = provider.http.get(url)
    assert answer.status_code == 302
    return answer.headers["location"]


def _redeem(
    provider: Provider, code: str, verifier: str, *, redirect_uri: str = CALLBACK
) -> httpx.Response:
    return httpx.post(
        f"{provider.url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )


def test_wrong_secret_unknown_client_and_foreign_redirect_are_refused(
    provider: Provider,
) -> None:
    started = start(provider)
    location = sign_in(provider, started, "ann")
    wrong = provider.client(client_secret="not-the-secret")
    with pytest.raises(OAuthError) as refused:
        wrong.fetch_token(
            f"{provider.url}/token", authorization_response=location, code_verifier=started.verifier
        )
    assert refused.value.error == "invalid_client"
    # The code survives a refused client: the right client can still redeem it.
    token = started.client.fetch_token(
        f"{provider.url}/token", authorization_response=location, code_verifier=started.verifier
    )
    assert token["access_token"]

    # Never redirected to an unregistered URI: an error page instead.
    for redirect in ["https://evil.example/auth/callback", "http://127.0.0.1:8005/elsewhere"]:
        page = start(provider, redirect_uri=redirect).form
        assert page.status_code == 400 and "location" not in page.headers
        assert "not registered" in page.text
    stranger = start(provider, client_id="stranger").form
    assert stranger.status_code == 400 and "Unknown client" in stranger.text
    # PKCE is required: without it, the client is told so at its own redirect URI.
    no_pkce = provider.http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": CALLBACK,
            "scope": "openid",
            "state": "s1",
        },
    )
    assert no_pkce.status_code == 302
    query = parse_qs(urlsplit(no_pkce.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s1"]
    # A wrong password shows the form again, with an error.
    provider.http.cookies.clear()  # another browser
    started = start(provider)
    bad = provider.http.post(
        "/authorize",
        data={
            "handle": hidden_field(started.form.text, "handle"),
            "username": "ann",
            "password": "x",
        },
    )
    assert bad.status_code == 401 and "wrong password" in bad.text
    assert 'name="password"' in bad.text


def test_key_survives_restart_and_minted_tokens_carry_what_was_asked(tmp_path: Path) -> None:
    with serve_identity(tmp_path) as url:
        minted = httpx.post(
            f"{url}/sandbox/tokens",
            json={"sub": "audrey", "aud": "elsewhere", "iss": "http://other", "expires_in": -60},
        ).json()
        first_keys = httpx.get(f"{url}/jwks").json()
    with serve_identity(tmp_path) as url:
        assert httpx.get(f"{url}/jwks").json() == first_keys
    decoded = jwt.decode(
        minted["access_token"], KeySet.import_key_set(first_keys), algorithms=["RS256"]
    )
    claims = decoded.claims
    assert claims["aud"] == "elsewhere" and claims["iss"] == "http://other"
    assert claims["exp"] < time.time() and claims["roles"] == ["auditor"]
    assert (tmp_path / "identity-key.json").stat().st_mode & 0o077 == 0
    assert decoded.header["typ"] == "at+jwt"
