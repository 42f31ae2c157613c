"""Provider access tokens without a provider: Keycloak-shaped claims, the JWKS cache (an
unknown kid fetches again at most once a minute) and the clock leeway, with joserfc keys."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from shared.settings import StaffSettings
from shared.staff_oidc import IssuerKeys, OidcConfig, OidcVerifier
from shared.staff_tokens import InvalidToken, unverified_header

ISSUER = "http://keycloak:8080/realms/refunds"
KEYCLOAK = OidcConfig(issuer=ISSUER, roles_claim="realm_access.roles")


class Provider:
    """A JWKS endpoint whose answers and fetches the test controls and counts."""

    def __init__(self, *keys: RSAKey | ECKey) -> None:
        self.keys = list(keys)
        self.fetched: list[str] = []
        self.now = 1000.0

    def fetch(self, url: str) -> dict[str, Any]:
        self.fetched.append(url)
        if url.endswith("/.well-known/openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs"}
        return dict(KeySet(self.keys).as_dict(private=False))

    def verifier(self, config: OidcConfig = KEYCLOAK) -> OidcVerifier:
        return OidcVerifier(config, IssuerKeys(config, self.fetch, clock=lambda: self.now))


def rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def keycloak_token(key: RSAKey | ECKey, alg: str = "RS256", **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ["refunds", "account"],
        "sub": "0c7b1a5e-9d2f-4c1e-8a61-3f0a9b2d7e44",
        "preferred_username": "wang",
        "realm_access": {"roles": ["senior_reviewer", "offline_access", "default-roles-refunds"]},
        "iat": now,
        "exp": now + 300,
        "typ": "Bearer",
    } | extra
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key)


def verify(verifier: OidcVerifier, token: str) -> tuple[str, frozenset[str]]:
    return verifier.verify(token, unverified_header(token))


def test_keycloak_realm_roles_are_read_and_foreign_roles_dropped() -> None:
    key = rsa("kc-1")
    provider = Provider(key)
    assert verify(provider.verifier(), keycloak_token(key)) == (
        "wang",
        frozenset({"senior_reviewer"}),
    )
    # Discovery first, then the JWKS it names.
    assert provider.fetched == [
        f"{ISSUER}/.well-known/openid-configuration",
        f"{ISSUER}/protocol/openid-connect/certs",
    ]
    # No person claim: the subject is the person.
    token = keycloak_token(key, preferred_username=None)
    assert verify(provider.verifier(), token)[0] == "0c7b1a5e-9d2f-4c1e-8a61-3f0a9b2d7e44"
    # No roles claim at all: no staff roles (the API answers 403, not 401).
    assert verify(provider.verifier(), keycloak_token(key, realm_access=None))[1] == frozenset()


def test_es256_keys_verify_too() -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    provider = Provider(key)
    assert verify(provider.verifier(), keycloak_token(key, "ES256"))[0] == "wang"


def test_an_unknown_kid_fetches_the_keys_again_at_most_once_a_minute() -> None:
    old, new = rsa("kc-1"), rsa("kc-2")
    provider = Provider(old)
    verifier = provider.verifier(OidcConfig(issuer=ISSUER, jwks_url=f"{ISSUER}/certs"))
    verify(verifier, keycloak_token(old, realm_access=None, roles=["reviewer"]))
    assert len(provider.fetched) == 1  # the configured JWKS URL: no discovery

    provider.keys = [old, new]  # the provider rotates its key
    provider.now += 30
    with pytest.raises(InvalidToken, match="no key 'kc-2'"):
        verify(verifier, keycloak_token(new))
    assert len(provider.fetched) == 1, "fetched again within the minute"
    for _ in range(5):  # a flood of unknown kids fetches nothing more
        with pytest.raises(InvalidToken):
            verify(verifier, keycloak_token(rsa("random")))
    assert len(provider.fetched) == 1

    provider.now += 31
    assert verify(verifier, keycloak_token(new))[0] == "wang"
    assert len(provider.fetched) == 2
    assert verify(verifier, keycloak_token(old))[0] == "wang"  # both keys held now
    assert len(provider.fetched) == 2


def test_times_have_a_small_leeway_and_no_more() -> None:
    key = rsa("kc-1")
    verifier = Provider(key).verifier()
    now = int(time.time())
    assert verify(verifier, keycloak_token(key, exp=now - 10))[0] == "wang"
    with pytest.raises(InvalidToken, match="expired"):
        verify(verifier, keycloak_token(key, exp=now - 120))
    with pytest.raises(InvalidToken, match="not valid yet"):
        verify(verifier, keycloak_token(key, nbf=now + 120))
    with pytest.raises(InvalidToken, match="exp"):
        verify(verifier, keycloak_token(key, exp=None))


def test_issuer_audience_and_type_are_checked() -> None:
    key = rsa("kc-1")
    verifier = Provider(key).verifier()
    with pytest.raises(InvalidToken, match="issuer"):
        verify(verifier, keycloak_token(key, iss="http://keycloak:8080/realms/master"))
    with pytest.raises(InvalidToken, match="audience"):
        verify(verifier, keycloak_token(key, aud="account"))
    claims = {"iss": ISSUER, "aud": "refunds", "sub": "x", "exp": int(time.time()) + 60}
    logout = jwt.encode({"alg": "RS256", "kid": "kc-1", "typ": "Logout"}, claims, key)
    with pytest.raises(InvalidToken, match="typ"):
        verify(verifier, logout)


def test_an_unreachable_provider_refuses_its_tokens_and_is_asked_again_soon() -> None:
    key = rsa("kc-1")
    provider = Provider(key)
    calls: list[str] = []

    def down(url: str) -> dict[str, Any]:
        calls.append(url)
        raise ValueError("connection refused")

    verifier = OidcVerifier(KEYCLOAK, IssuerKeys(KEYCLOAK, down, clock=lambda: provider.now))
    with pytest.raises(InvalidToken, match="could not be fetched"):
        verify(verifier, keycloak_token(key))
    with pytest.raises(InvalidToken, match="could not be fetched"):
        verify(verifier, keycloak_token(key))
    assert len(calls) == 1
    provider.now += 6  # a failed fetch is retried after seconds, not a minute
    with pytest.raises(InvalidToken):
        verify(verifier, keycloak_token(key))
    assert len(calls) == 2


def test_settings_build_the_provider_config_and_refuse_bad_values() -> None:
    assert StaffSettings(env="test").oidc() is None
    config = StaffSettings(
        env="test", oidc_issuer=ISSUER, oidc_roles_claim="realm_access.roles"
    ).oidc()
    assert config == KEYCLOAK
    for bad in [
        {"oidc_issuer": "keycloak:8080"},
        {"oidc_roles_claim": "realm access"},
        {"oidc_person_claim": "a.b"},
        {"oidc_audience": ""},
        {"oidc_jwks_url": "file:///etc/keys"},
    ]:
        with pytest.raises(ValueError):
            StaffSettings(env="test", **({"oidc_issuer": ISSUER} | bad))
