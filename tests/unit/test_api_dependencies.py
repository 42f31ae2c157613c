"""The dependencies every service's deps.py declares its aliases with, on a tiny app: objects
from `http.state`, the tenant behind an API key, staff by role, a staff command's key, list
pages, and the problems every service answers alike."""

# No `from __future__ import annotations`: the routes' annotations are read by FastAPI.

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from shared.auth import ApiKeys, Tenant, parse_api_keys
from shared.http import install_problem_handlers, on_state
from shared.idempotency import IdempotencyMismatch
from shared.keyed import PlatformCommand, StaffCall, staff_command
from shared.problems import not_allowed, not_found
from shared.schemas import Listed, Strict
from shared.staff import StaffAuth, staff_with
from shared.staff_tokens import encode, staff_claims

SECRET = "unit-test-secret-0123456789abcdef"
Reader = staff_with("auditor", "admin")
Acting = staff_command("finance")
Greeting = Annotated[str, on_state("greeting")]


class Note(Strict):
    text: str


class Notes(Listed):
    data: list[Note]


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.state.greeting = "hello"
    app.state.staff_auth = StaffAuth(SECRET)
    app.state.api_keys = ApiKeys(parse_api_keys("acme:acme-key"))
    install_problem_handlers(app)

    @app.get("/greeting")
    def greeting(text: Greeting) -> Any:
        return {"text": text}

    @app.get("/tenant")
    def tenant(tenant: Tenant) -> Any:
        return {"tenant": tenant}

    @app.post("/command")
    def command(call: PlatformCommand) -> Any:
        keyed = call.keyed()
        return call.by() | {"keyed": keyed.scope if keyed else None}

    @app.get("/read")
    def read(staff: Reader) -> Any:
        return {"sub": staff.sub}

    @app.post("/act")
    def act(staff: Acting) -> Any:
        assert isinstance(staff, StaffCall)
        keyed = staff.keyed()
        return {"sub": staff.sub, "scope": keyed.scope if keyed else None}

    @app.get("/notes")
    def notes(request: Request) -> Any:
        return Notes.of(request, [Note(text="a")], has_more=True)

    @app.get("/conflict")
    def conflict() -> Any:
        raise IdempotencyMismatch

    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff(*roles: str) -> dict[str, str]:
    return bearer(encode(staff_claims("ann", list(roles), 3600), SECRET))


def test_on_state_answers_what_the_composition_root_put_there(client: TestClient) -> None:
    assert client.get("/greeting").json() == {"text": "hello"}


def test_the_tenant_is_the_api_keys_and_a_command_is_recorded_as_it(client: TestClient) -> None:
    assert client.get("/tenant", headers=bearer("acme-key")).json() == {"tenant": "acme"}
    assert client.get("/tenant").status_code == 401
    answered = client.post("/command", headers=bearer("acme-key") | {"Idempotency-Key": "k1"})
    assert answered.json() == {"tenant": "acme", "actor": "tenant:acme", "keyed": "acme"}


def test_staff_with_checks_the_roles(client: TestClient) -> None:
    assert client.get("/read", headers=staff("auditor")).json() == {"sub": "ann"}
    assert client.get("/read", headers=staff("finance")).status_code == 403
    assert client.get("/read").status_code == 401


def test_a_staff_command_keys_its_request_among_the_persons_keys(client: TestClient) -> None:
    headers = staff("finance") | {"Idempotency-Key": "k1"}
    assert client.post("/act", headers=headers).json() == {"sub": "ann", "scope": "staff:ann"}
    assert client.post("/act", headers=staff("finance")).json()["scope"] is None
    assert client.post("/act", headers=staff("auditor")).status_code == 403


def test_an_unknown_role_fails_where_the_alias_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown staff roles"):
        staff_with("auditr")
    with pytest.raises(ValueError, match="unknown staff roles"):
        staff_command("financ")


def test_a_list_page_is_stripes_shape(client: TestClient) -> None:
    assert client.get("/notes").json() == {
        "object": "list",
        "url": "/notes",
        "has_more": True,
        "data": [{"text": "a"}],
    }


def test_every_app_answers_a_reused_idempotency_key_alike(client: TestClient) -> None:
    answered = client.get("/conflict")
    assert answered.status_code == 409
    assert answered.json()["type"].endswith("/idempotency-conflict")
    assert answered.json()["title"] == "Idempotency key reused"


def test_the_problems_services_share() -> None:
    missing = not_found("refund", "No refund rf_1.")
    assert (missing.status, missing.title, missing.kind) == (404, "No such refund", "not-found")
    refused = not_allowed("not_withdrawable", "Too late.")
    assert (refused.status, refused.title) == (409, "Not allowed in this state")
    assert refused.kind == "not-withdrawable"
