"""Platform API keys: `Authorization: Bearer <key>`, each key belonging to one tenant."""

from __future__ import annotations

import hashlib
import hmac

from shared.http import Problem

DEV_TENANT = "dev-platform"
DEV_API_KEY = "sk_dev_local_only_0000000000000000"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(spec: str) -> dict[str, str]:
    """`tenant:key,tenant:key` → {sha256(key): tenant}; only hashes are kept in memory."""
    keys: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in spec.split(","))):
        tenant, sep, key = pair.partition(":")
        if not sep or not tenant or not key:
            raise ValueError(f"expected tenant:key, got {pair!r}")
        keys[digest(key)] = tenant
    return keys


class ApiKeys:
    def __init__(self, hashed: dict[str, str]) -> None:
        self._hashed = hashed

    def tenant_for(self, authorization: str | None) -> str:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise _unauthorized("Send `Authorization: Bearer <api key>`.")
        wanted = digest(key.strip())
        for known, tenant in self._hashed.items():
            if hmac.compare_digest(known, wanted):
                return tenant
        raise _unauthorized("The API key is not valid.")


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )
