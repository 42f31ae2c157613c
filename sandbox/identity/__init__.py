"""Sandbox identity provider: an OpenID Provider for dev and tests, like Keycloak to a client.

Authorization code with PKCE (S256 required), refresh tokens, userinfo and RP-initiated
logout; RS256 JWT access tokens (RFC 9068, `typ: at+jwt`, `aud: refunds`, `roles`) and ID
tokens, verifiable against `/jwks`. Demo staff for every role (password `demo`) and one
client, `refunds-console`. Test controls under /sandbox mint tokens a test needs. All of it
is for development only; described in sandbox/IDENTITY.md.

One module per part: people (staff and client), keys (the signing key and tokens), grants
(codes, sessions, refresh tokens), pages (HTML) and app (the HTTP app and `main`;
`python -m sandbox.identity`).
"""

from sandbox.identity.app import DEFAULT_PORT, SESSION_COOKIE, create_app, main
from sandbox.identity.keys import ACCESS_TTL, ACCESS_TYPE, KEY_FILE, Signer, load_or_create_key
from sandbox.identity.people import (
    ACCESS_AUDIENCE,
    CONSOLE_CLIENT_ID,
    CONSOLE_CLIENT_SECRET,
    DEMO_PASSWORD,
    PEOPLE,
    Person,
)

__all__ = [
    "ACCESS_AUDIENCE",
    "ACCESS_TTL",
    "ACCESS_TYPE",
    "CONSOLE_CLIENT_ID",
    "CONSOLE_CLIENT_SECRET",
    "DEFAULT_PORT",
    "DEMO_PASSWORD",
    "KEY_FILE",
    "PEOPLE",
    "SESSION_COOKIE",
    "Person",
    "Signer",
    "create_app",
    "load_or_create_key",
    "main",
]
