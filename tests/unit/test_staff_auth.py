"""Staff tokens on a tiny app: who gets in (200), who is unknown (401) and who may not (403)."""

# No `from __future__ import annotations`: the routes' annotations name a local `auth`.

import base64
import json
import time
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.http import install_problem_handlers
from shared.staff import Staff, StaffAuth
from shared.staff_tokens import encode, staff_claims

SECRET = "unit-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def client() -> TestClient:
    auth = StaffAuth(SECRET)
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/decide")
    def decide(staff: Annotated[Staff, Depends(auth.dependency("reviewer", "admin"))]) -> Any:
        return {"sub": staff.sub, "roles": sorted(staff.roles)}

    @app.get("/anyone")
    def anyone(staff: Annotated[Staff, Depends(auth.dependency())]) -> Any:
        return {"sub": staff.sub}

    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(sub: str = "ann", roles: list[str] | None = None, ttl: int = 3600, **extra: Any) -> str:
    claims = staff_claims(sub, ["reviewer"] if roles is None else roles, ttl) | extra
    return encode(claims, SECRET)


def assert_unauthorized(response: Any, detail_part: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["type"].endswith("/unauthorized")
    assert detail_part in body["detail"]


def test_a_valid_token_names_the_person_and_roles(client: TestClient) -> None:
    response = client.get("/decide", headers=bearer(token("ann", ["reviewer", "auditor"])))
    assert response.status_code == 200
    assert response.json() == {"sub": "ann", "roles": ["auditor", "reviewer"]}


def test_no_token_or_another_scheme_is_401(client: TestClient) -> None:
    assert_unauthorized(client.get("/decide"), "Bearer")
    basic = {"Authorization": "Basic YW5uOnB3"}
    assert_unauthorized(client.get("/decide", headers=basic), "Bearer")


def test_an_expired_token_is_401(client: TestClient) -> None:
    expired = encode(staff_claims("ann", ["reviewer"], 60, now=int(time.time()) - 120), SECRET)
    assert_unauthorized(client.get("/decide", headers=bearer(expired)), "expired")


def test_a_token_signed_with_another_secret_is_401(client: TestClient) -> None:
    forged = encode(staff_claims("ann", ["admin"], 3600), "another-secret")
    assert_unauthorized(client.get("/decide", headers=bearer(forged)), "signature")


def test_alg_none_is_401(client: TestClient) -> None:
    def segment(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = (
        f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(staff_claims('ann', ['admin'], 3600))}."
    )
    assert_unauthorized(client.get("/decide", headers=bearer(unsigned)), "algorithm")


def test_garbage_is_401(client: TestClient) -> None:
    assert_unauthorized(client.get("/decide", headers=bearer("not-a-jwt")), "not valid")


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"roles": None}, "no roles"),
        ({"roles": []}, "no roles"),
        ({"roles": "reviewer"}, "no roles"),
        ({"roles": ["reviewer", "superuser"]}, "unknown roles ['superuser']"),
        ({"sub": ""}, "no person"),
        ({"sub": 42}, "no person"),
    ],
)
def test_a_token_without_a_person_or_known_roles_is_401(
    client: TestClient, claims: dict[str, Any], detail: str
) -> None:
    bad = encode(staff_claims("ann", ["reviewer"], 3600) | claims, SECRET)
    assert_unauthorized(client.get("/decide", headers=bearer(bad)), detail)


def test_a_token_that_never_expires_is_401(client: TestClient) -> None:
    forever = encode({"sub": "ann", "roles": ["admin"]}, SECRET)
    assert_unauthorized(client.get("/decide", headers=bearer(forever)), "exp")


def test_the_wrong_role_is_403(client: TestClient) -> None:
    response = client.get("/decide", headers=bearer(token("al", ["auditor", "finance"])))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/forbidden")
    assert "['admin', 'reviewer']" in body["detail"] and "['auditor', 'finance']" in body["detail"]


def test_no_roles_named_admits_any_staff_member(client: TestClient) -> None:
    response = client.get("/anyone", headers=bearer(token("al", ["auditor"])))
    assert response.status_code == 200 and response.json() == {"sub": "al"}


def test_routes_name_only_known_roles_and_need_a_secret() -> None:
    with pytest.raises(ValueError, match="unknown staff roles"):
        StaffAuth(SECRET).dependency("reviewr")
    with pytest.raises(ValueError, match="secret"):
        StaffAuth("")


def test_openapi_documents_the_bearer_scheme(client: TestClient) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["StaffToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A staff JWT: HS256 with `sub` and `roles`, or the identity provider's "
        "access token (RS256/ES256, verified against its JWKS).",
    }


def test_production_needs_a_real_ledger_signing_key() -> None:
    import base64

    from shared.settings import ServiceSettings
    from shared.signing import dev_seed

    with pytest.raises(ValueError, match="REFUNDS_AUDIT_SIGNING_KEY"):
        ServiceSettings(env="production")
    with pytest.raises(ValueError, match="REFUNDS_AUDIT_SIGNING_KEY"):
        ServiceSettings(env="production", audit_signing_key=dev_seed("review"))
    with pytest.raises(ValueError, match="32 bytes"):
        ServiceSettings(audit_signing_key=base64.b64encode(b"short").decode())
    real = base64.b64encode(bytes(range(32))).decode()
    signer = ServiceSettings(env="production", audit_signing_key=real).audit_signer("review")
    assert signer.public_key != ServiceSettings().audit_signer("review").public_key
