"""Who the sandbox identity provider knows: the demo staff and the one registered client.

Everything here is public and for development only: every demo person's password is `demo`,
and the console's client secret is written in this file.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

DEMO_PASSWORD = "demo"  # noqa: S105 - dev-only, documented in sandbox/IDENTITY.md
CONSOLE_CLIENT_ID = "refunds-console"
CONSOLE_CLIENT_SECRET = "dev-console-secret"  # noqa: S105 - dev-only, public on purpose
ACCESS_AUDIENCE = "refunds"  # the services' audience (RFC 9068 `aud`), as in Keycloak's mapper
ZONE = "Asia/Shanghai"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
CALLBACK_PATH = "/auth/callback"
SUBJECTS = uuid.UUID("6f0c1d4e-9a55-4e52-9a3b-1f0e6a5e2c17")  # namespace of the demo `sub`s


@dataclass(frozen=True)
class Person:
    """A demo staff member: `sub` is stable (like Keycloak's user id); `username` is what
    they type and what the services record as the actor (`preferred_username`)."""

    username: str
    name: str
    roles: tuple[str, ...]
    locale: str
    zoneinfo: str = ZONE

    @property
    def sub(self) -> str:
        return str(uuid.uuid5(SUBJECTS, self.username))

    def claims(self) -> dict[str, object]:
        """The person claims every token and userinfo carries."""
        return {
            "sub": self.sub,
            "preferred_username": self.username,
            "name": self.name,
            "locale": self.locale,
            "zoneinfo": self.zoneinfo,
            "roles": list(self.roles),
        }


PEOPLE: dict[str, Person] = {
    p.username: p
    for p in (
        Person("ann", "安娜 Ān Nà", ("reviewer",), "zh-CN"),
        # Bob works from London: the console shows him times in his own zone.
        Person("bob", "Bob Li 李博", ("reviewer",), "en", "Europe/London"),
        Person("wang", "王伟 Wáng Wěi", ("senior_reviewer",), "zh-CN"),
        Person("zhao", "赵敏 Zhào Mǐn", ("finance",), "zh-CN"),
        Person("audrey", "Audrey Chen 陈奥黛", ("auditor",), "en"),
        Person("root", "管理员 Guǎnlǐyuán (root)", ("admin",), "en"),
        Person("wu", "吴刚 Wú Gāng", ("warehouse",), "zh-CN"),
    )
}


def person_by_sub(sub: str) -> Person | None:
    return next((p for p in PEOPLE.values() if p.sub == sub), None)


def check_password(username: str, password: str) -> Person | None:
    """The person if `password` is theirs (every demo password is `demo`)."""
    person = PEOPLE.get(username.strip())
    if person is None or not hmac.compare_digest(password.encode(), DEMO_PASSWORD.encode()):
        return None
    return person


@dataclass(frozen=True)
class Client:
    """A registered relying party. Redirects are loopback URIs on any port (RFC 8252 §7.3):
    the console runs on whatever port `refunds dev` gives it."""

    client_id: str
    secret: str

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), self.secret.encode())

    def redirect_allowed(self, uri: str) -> bool:
        return _loopback(uri, CALLBACK_PATH)

    def post_logout_allowed(self, uri: str) -> bool:
        return _loopback(uri, "/")


CLIENTS: dict[str, Client] = {
    CONSOLE_CLIENT_ID: Client(CONSOLE_CLIENT_ID, CONSOLE_CLIENT_SECRET),
}


def _loopback(uri: str, path: str) -> bool:
    """`http://127.0.0.1:<port><path>` or `http://localhost:<port><path>`, nothing more."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in LOOPBACK_HOSTS
        and parts.username is None
        and parts.password is None
        and port is not None
        and parts.path == path
        and not parts.fragment
    )
