"""The identity provider's HTTP app (OIDC endpoints and test controls), and `main`."""

from __future__ import annotations

import base64
import binascii
import os
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from sandbox.identity.grants import Authorization, Grant, Grants, pkce_matches
from sandbox.identity.keys import ACCESS_TTL, ACCESS_TYPE, Signer, load_or_create_key
from sandbox.identity.pages import STYLE, error_page, secure, sign_in_page, signed_out_page
from sandbox.identity.people import (
    ACCESS_AUDIENCE,
    CLIENTS,
    PEOPLE,
    Client,
    Person,
    check_password,
    person_by_sub,
)
from sandbox.serving import EXIT_BAD_CONFIG, data_dir_from_env, host_from_env, port_from_env
from shared.http_server import serve_http

DEFAULT_PORT = 8050
SESSION_COOKIE = "sandbox_idp_session"
SCOPES = ("openid", "profile", "email", "roles", "offline_access")
CLAIMS = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "preferred_username",
    "locale", "zoneinfo", "roles",
)  # fmt: skip


class MintRequest(BaseModel):
    """`POST /sandbox/tokens`: an access token as the test needs it, right or wrong."""

    sub: str = Field(description="a demo username (their claims are filled in) or any subject")
    roles: list[str] | None = Field(None, description="default: the demo person's roles")
    aud: str | list[str] = ACCESS_AUDIENCE
    iss: str | None = Field(None, description="default: this provider's issuer")
    expires_in: int = Field(ACCESS_TTL, description="negative for an already expired token")
    typ: str = ACCESS_TYPE
    client_id: str = "refunds-console"
    scope: str = "openid profile"


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    """An RFC 6749 §5.2 error."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="sandbox-identity"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form browsers and OAuth clients post (python-multipart is not needed)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _client_auth(request: Request, form: dict[str, str]) -> Client | None:
    """client_secret_basic or client_secret_post (RFC 6749 §2.3.1), exactly one of them."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, _, secret = raw.partition(":")
        client_id, secret = unquote(client_id), unquote(secret)
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    client = CLIENTS.get(client_id)
    return client if client is not None and client.secret_matches(secret) else None


def _redirect(uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", status_code=302)


def create_app(data_dir: Path, *, issuer: str) -> FastAPI:
    """The provider known as `issuer` (its own base URL), keeping its key in `data_dir`."""
    issuer = issuer.rstrip("/")
    signer = Signer(load_or_create_key(data_dir), issuer)
    grants = Grants()
    app = FastAPI(title="Sandbox identity provider (OpenID Connect)")
    app.state.signer = signer
    app.state.grants = grants

    def tokens(grant: Grant, person: Person) -> JSONResponse:
        claims = person.claims()
        access, ttl = signer.access_token(claims, grant.client_id, grant.scope, ACCESS_AUDIENCE)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": grant.scope,
            "refresh_token": grants.issue_refresh(grant),
        }
        if "openid" in grant.scope.split():
            body["id_token"] = signer.id_token(
                claims, grant.client_id, grant.nonce, grant.auth_time, access
            )
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def code_redirect(request: Authorization, username: str, auth_time: int) -> Response:
        code = grants.issue_code(request, username, auth_time)
        return _redirect(request.redirect_uri, {"code": code, "state": request.state})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "end_session_endpoint": f"{issuer}/logout",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": list(CLAIMS),
        }

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return signer.jwks()

    @app.get("/style.css")
    def style() -> Response:
        return PlainTextResponse(STYLE, media_type="text/css")

    @app.get("/authorize")
    def authorize(request: Request) -> Response:
        q = request.query_params
        client = CLIENTS.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        # Never redirect to a URI we cannot vouch for (RFC 6749 §4.1.2.1): show the error.
        if client is None:
            return error_page(f"Unknown client {q.get('client_id', '')!r}.")
        if not client.redirect_allowed(redirect_uri):
            return error_page(f"The redirect URI {redirect_uri!r} is not registered.")
        state = q.get("state")

        def refuse(error: str, description: str) -> Response:
            return _redirect(
                redirect_uri, {"error": error, "error_description": description, "state": state}
            )

        if q.get("response_type") != "code":
            return refuse("unsupported_response_type", "only response_type=code is supported")
        scope = q.get("scope", "")
        if "openid" not in scope.split():
            return refuse("invalid_scope", "the scope must include openid")
        unknown = sorted(set(scope.split()) - set(SCOPES))
        if unknown:
            return refuse("invalid_scope", f"unknown scopes {unknown}")
        challenge = q.get("code_challenge", "")
        if not challenge or q.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "PKCE is required: code_challenge with S256")
        held = Authorization(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            nonce=q.get("nonce"),
            code_challenge=challenge,
        )
        # A live provider session skips the form, like a real IdP's single sign-on.
        signed_in = grants.session(request.cookies.get(SESSION_COOKIE))
        if signed_in is not None and q.get("prompt") != "login":
            return code_redirect(held, *signed_in)
        if q.get("prompt") == "none":
            return refuse("login_required", "nobody is signed in")
        return sign_in_page(grants.hold(held), client.client_id)

    @app.post("/authorize")
    async def sign_in(request: Request) -> Response:
        form = await _form(request)
        handle = form.get("handle", "")
        held = grants.pending(handle)
        if held is None:
            return error_page("This sign-in form has expired; start again from the app.")
        person = check_password(form.get("username", ""), form.get("password", ""))
        if person is None:
            return sign_in_page(
                handle,
                held.client_id,
                error="Unknown username or wrong password.",
                username=form.get("username", ""),
            )
        grants.drop_pending(handle)
        session, auth_time = grants.open_session(person.username)
        response = code_redirect(held, person.username, auth_time)
        response.set_cookie(
            SESSION_COOKIE, session, httponly=True, samesite="lax", path="/", secure=False
        )
        return response

    @app.post("/token")
    async def token(request: Request) -> Response:
        form = await _form(request)
        client = _client_auth(request, form)
        if client is None:
            return _oauth_error("invalid_client", "client authentication failed", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = grants.redeem_code(form.get("code", ""))
            if grant is None:
                return _oauth_error("invalid_grant", "the code is unknown, used or expired")
            if grant.client_id != client.client_id:
                return _oauth_error("invalid_grant", "the code was issued to another client")
            if form.get("redirect_uri") != grant.redirect_uri:
                return _oauth_error("invalid_grant", "redirect_uri does not match the request")
            if not pkce_matches(form.get("code_verifier", ""), grant.code_challenge):
                return _oauth_error("invalid_grant", "the PKCE code_verifier does not match")
        elif grant_type == "refresh_token":
            found = grants.rotate_refresh(form.get("refresh_token", ""))
            if found is None or found.client_id != client.client_id:
                return _oauth_error("invalid_grant", "the refresh token is unknown or expired")
            grant = found
            asked = form.get("scope")
            if asked:
                if not set(asked.split()) <= set(grant.scope.split()):
                    return _oauth_error("invalid_scope", "a refresh cannot widen the scope")
                grant = replace(grant, scope=asked)
        else:
            return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r}")
        return tokens(grant, PEOPLE[grant.username])

    @app.api_route("/userinfo", methods=["GET", "POST"])
    def userinfo(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        claims = (
            signer.verified(value.strip(), audience=ACCESS_AUDIENCE)
            if scheme.lower() == "bearer"
            else None
        )
        person = person_by_sub(str(claims.get("sub"))) if claims else None
        if person is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse(person.claims(), headers={"Cache-Control": "no-store"})

    @app.get("/logout")
    def logout(request: Request) -> Response:
        q = request.query_params
        target = q.get("post_logout_redirect_uri")
        hint = q.get("id_token_hint")
        hinted = signer.verified(hint) if hint else None
        if hint and hinted is None:
            return error_page("The id_token_hint was not issued by this provider.")
        client_id = q.get("client_id") or (str(hinted.get("aud")) if hinted else "")
        if target is not None:
            client = CLIENTS.get(client_id)
            if client is None or not client.post_logout_allowed(target):
                return error_page(f"The post-logout redirect URI {target!r} is not registered.")
        grants.end_session(request.cookies.get(SESSION_COOKIE))
        response = _redirect(target, {"state": q.get("state")}) if target else signed_out_page()
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
        return response

    @app.get("/sandbox/users")
    def users() -> dict[str, Any]:
        """The demo staff (development only; every password is `demo`)."""
        return {"users": [p.claims() for p in PEOPLE.values()]}

    @app.post("/sandbox/tokens")
    def mint(body: MintRequest) -> dict[str, Any]:
        """An access token signed with the provider's key, with whatever claims a test
        needs (another audience or issuer, expired): development only."""
        person = PEOPLE.get(body.sub)
        claims: dict[str, Any] = person.claims() if person else {"sub": body.sub}
        if body.roles is not None:
            claims["roles"] = body.roles
        now = int(time.time())
        claims |= {
            "iss": body.iss or issuer,
            "aud": body.aud,
            "client_id": body.client_id,
            "scope": body.scope,
            "iat": now,
            "exp": now + body.expires_in,
            "jti": uuid.uuid4().hex,
        }
        return {"access_token": signer.sign(claims, body.typ), "claims": claims}

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if "Content-Security-Policy" not in response.headers:
            secure(response)
        return response

    return app


def main() -> None:
    """Serve the provider as SANDBOX_IDENTITY_HOST/PORT/ISSUER and SANDBOX_DATA_DIR say."""
    try:
        host = host_from_env("SANDBOX_IDENTITY_HOST")
        port = port_from_env("SANDBOX_IDENTITY_PORT", DEFAULT_PORT)
    except ValueError as exc:
        print(f"sandbox identity: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    issuer = os.environ.get("SANDBOX_IDENTITY_ISSUER", "").strip() or f"http://{host}:{port}"
    app = create_app(data_dir_from_env(), issuer=issuer)
    serve_http(app, host=host, port=port, log_level="info")
