"""Platform API keys: `Authorization: Bearer <key>`, each key belonging to one tenant.

Keys come from the environment (REFUNDS_API_KEYS) and, optionally, from a store
looked up by the key's hash (keys issued with `refunds api-keys create`). A platform's
route takes `Tenant`: the tenant behind the key, checked with the `ApiKeys` the composition
root put on `http.state.api_keys`.
"""

# No `from __future__ import annotations`: FastAPI reads `_tenant`'s parameters at runtime.

import asyncio
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from shared.problems import unauthorized
from shared.stamping import identify

DEV_TENANT = "dev-platform"
DEV_API_KEY = "sk_dev_local_only_0000000000000000"
LOOKUP_TTL_SECONDS = 10.0
LOOKUP_CACHE_SIZE = 10_000

Lookup = Callable[[str], str | None]


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
    """Resolves a bearer key to its tenant: environment keys first, then `lookup` (stored keys).

    `lookup(key_hash)` answers the tenant or None; both answers are cached for
    `ttl` seconds, so repeated bad keys do not reach the store on every request.
    A key revoked through this process is `forget`-ten at once (the revoking route calls
    it), so its very next request is refused; a key revoked anywhere else (the CLI, another
    intake process) stops working here within `ttl` seconds (LOOKUP_TTL_SECONDS: 10).
    """

    def __init__(
        self,
        hashed: dict[str, str],
        lookup: Lookup | None = None,
        *,
        ttl: float = LOOKUP_TTL_SECONDS,
        max_cached: int = LOOKUP_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hashed = hashed
        self._lookup = lookup
        self._ttl = ttl
        self._max_cached = max_cached
        self._clock = clock
        self._lock = threading.Lock()
        # key hash -> (tenant or None, expiry); insertion order is expiry order (one ttl).
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        # Counts `forget` calls: a look-up that began before one may have read the key live,
        # and its answer is then used once but not cached.
        self._forgotten = 0

    def tenant_for(self, authorization: str | None) -> str:
        wanted = _wanted(authorization)
        tenant = self._configured(wanted)
        if tenant is None:
            tenant = self._stored_tenant(wanted)
        return _identified(tenant, wanted)

    def known_tenant(self, authorization: str | None) -> str | None:
        """`tenant_for` when it needs no store: a configured key or a fresh cached answer
        (a 401 problem for a bad one); None when only the store can tell."""
        wanted = _wanted(authorization)
        tenant = self._configured(wanted)
        if tenant is None:
            cached = self._cached(wanted)
            if cached is None:
                return None
            tenant = cached[0]
        return _identified(tenant, wanted)

    def _configured(self, wanted: str) -> str | None:
        tenant: str | None = None
        for known, candidate in self._hashed.items():
            if hmac.compare_digest(known, wanted):
                tenant = candidate
        return tenant

    def forget(self, key_hash: str) -> None:
        """Drop the cached answer for this key hash: the next request asks the store again."""
        with self._lock:
            self._cache.pop(key_hash, None)
            self._forgotten += 1

    def _stored_tenant(self, wanted: str) -> str | None:
        if self._lookup is None:
            return None
        with self._lock:
            forgotten = self._forgotten
        cached = self._cached(wanted)
        if cached is not None:
            return cached[0]
        now = self._clock()
        tenant = self._lookup(wanted)  # outside the lock: a store round trip
        with self._lock:
            if forgotten != self._forgotten:
                return tenant
            self._cache.pop(wanted, None)
            self._cache[wanted] = (tenant, now + self._ttl)
            if len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return tenant

    def _cached(self, wanted: str) -> tuple[str | None] | None:
        """The look-up's unexpired answer for this key hash, if there is one."""
        if self._lookup is None:
            return (None,)  # no store: only the configured keys exist
        now = self._clock()
        with self._lock:
            while self._cache and next(iter(self._cache.values()))[1] <= now:
                self._cache.popitem(last=False)
            cached = self._cache.get(wanted)
        return (cached[0],) if cached is not None else None


def _wanted(authorization: str | None) -> str:
    """The bearer key's hash (a 401 problem for a missing or malformed header)."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthorized("Send `Authorization: Bearer <api key>`.")
    return digest(key.strip())


def _identified(tenant: str | None, wanted: str) -> str:
    if tenant is None:
        raise unauthorized("The API key is not valid.")
    # The key's fingerprint, never the key: which of the tenant's keys acted.
    identify(f"tenant:{tenant}", via=f"key:{wanted[:12]}")
    return tenant


async def _tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The platform behind the API key (a 401 problem without a valid one). On the event
    loop: a configured or cached key needs no thread; only a store look-up takes one."""
    keys: ApiKeys = request.app.state.api_keys
    tenant = keys.known_tenant(authorization)
    if tenant is None:
        tenant = await asyncio.to_thread(keys.tenant_for, authorization)
    return tenant


Tenant = Annotated[str, Depends(_tenant)]
