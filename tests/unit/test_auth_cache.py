"""ApiKeys with a stored-key look-up: env keys first, answers cached for a short time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.intake.tenants import ApiKey, check_tenant, key_hash
from shared.auth import ApiKeys, digest, parse_api_keys
from shared.http import Problem


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StoredKeys:
    """A look-up over a dict, counting how often it is asked."""

    def __init__(self, **tenants_by_key: str) -> None:
        self.tenants = {digest(key): tenant for key, tenant in tenants_by_key.items()}
        self.asked: list[str] = []

    def __call__(self, hashed: str) -> str | None:
        self.asked.append(hashed)
        return self.tenants.get(hashed)


def refused(keys: ApiKeys, key: str) -> bool:
    try:
        keys.tenant_for(f"Bearer {key}")
    except Problem as problem:
        assert problem.status == 401
        return True
    return False


def test_a_repeated_bad_key_is_looked_up_once_per_ttl() -> None:
    clock, stored = Clock(), StoredKeys()
    keys = ApiKeys({}, lookup=stored, ttl=10, clock=clock)
    for _ in range(50):
        assert refused(keys, "sk_guess")
    assert stored.asked == [digest("sk_guess")]

    clock.now += 10.5
    assert refused(keys, "sk_guess")
    assert len(stored.asked) == 2


def test_a_stored_key_is_cached_and_its_revocation_counts_after_the_ttl() -> None:
    clock, stored = Clock(), StoredKeys(sk_live="acme")
    keys = ApiKeys({}, lookup=stored, ttl=10, clock=clock)
    assert keys.tenant_for("Bearer sk_live") == "acme"

    del stored.tenants[digest("sk_live")]  # revoked
    clock.now += 9
    assert keys.tenant_for("Bearer sk_live") == "acme"
    assert len(stored.asked) == 1
    clock.now += 2
    assert refused(keys, "sk_live")


def test_a_forgotten_key_is_looked_up_again_at_once() -> None:
    clock, stored = Clock(), StoredKeys(sk_live="acme")
    keys = ApiKeys({}, lookup=stored, ttl=10, clock=clock)
    assert keys.tenant_for("Bearer sk_live") == "acme"
    del stored.tenants[digest("sk_live")]  # revoked through this process, which forgets it
    keys.forget(digest("sk_live"))
    assert refused(keys, "sk_live")  # no waiting for the TTL
    assert len(stored.asked) == 2


def test_an_answer_read_before_a_forget_is_not_cached() -> None:
    clock = Clock()
    keys: ApiKeys

    def racing(hashed: str) -> str | None:
        keys.forget(hashed)  # the key is revoked while this look-up is under way
        return "acme"

    keys = ApiKeys({}, lookup=racing, ttl=10, clock=clock)
    assert keys.tenant_for("Bearer sk_live") == "acme"
    stored = StoredKeys()
    keys._lookup = stored  # the store now says revoked
    assert refused(keys, "sk_live")  # the stale answer was not kept


def test_env_keys_never_reach_the_lookup() -> None:
    stored = StoredKeys(sk_stored="globex")
    keys = ApiKeys(parse_api_keys("acme:env-key-0123456789abcdefghij"), lookup=stored)
    assert keys.tenant_for("Bearer env-key-0123456789abcdefghij") == "acme"
    assert stored.asked == []
    assert keys.tenant_for("Bearer sk_stored") == "globex"
    assert refused(keys, "")  # no key: not even hashed
    assert stored.asked == [digest("sk_stored")]


def test_without_lookup_only_env_keys_count() -> None:
    keys = ApiKeys(parse_api_keys("acme:env-key-0123456789abcdefghij"))
    assert keys.tenant_for("bearer env-key-0123456789abcdefghij") == "acme"
    assert refused(keys, "sk_anything")


def test_the_cache_is_bounded() -> None:
    clock, stored = Clock(), StoredKeys()
    keys = ApiKeys({}, lookup=stored, ttl=10, max_cached=2, clock=clock)
    for key in ("sk_a", "sk_b", "sk_c", "sk_a"):  # sk_a was pushed out by sk_c
        assert refused(keys, key)
    assert len(stored.asked) == 4


def test_a_failing_lookup_is_not_cached() -> None:
    calls = []

    def flaky(hashed: str) -> str | None:
        calls.append(hashed)
        if len(calls) == 1:
            raise ConnectionError("store down")
        return "acme"

    keys = ApiKeys({}, lookup=flaky)
    with pytest.raises(ConnectionError):
        keys.tenant_for("Bearer sk_live")
    assert keys.tenant_for("Bearer sk_live") == "acme"


def test_stored_keys_are_hashed_as_auth_hashes_them() -> None:
    assert key_hash("sk_example") == digest("sk_example")
    assert ApiKey.create_id(key_hash("sk_a")) != ApiKey.create_id(key_hash("sk_b"))


@pytest.mark.parametrize("name", ["acme", "dev-platform", "shop_42", "7eleven", "a" * 63])
def test_tenant_names_allowed(name: str) -> None:
    assert check_tenant(name) == name


@pytest.mark.parametrize("name", ["", "a", "Acme", "_acme", "acme!", "a b", "a" * 64, "acme\n"])
def test_tenant_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant name"):
        check_tenant(name)


def test_tenants_module_loads_no_web_or_kafka_framework() -> None:
    code = (
        "import sys, services.intake.tenants; "
        "print(sorted({'fastapi', 'starlette', 'aiokafka'} & set(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
