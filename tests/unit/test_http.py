"""Shared HTTP plumbing on a tiny app: body limit, problem documents and their OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from shared.health import Health
from shared.http import (
    PROBLEM_JSON,
    BodyLimit,
    Problem,
    ProblemDocument,
    field_errors,
    health_router,
    install_problem_handlers,
    problem_responses,
)

LIMIT = 1000
PROBLEM_REF = "#/components/schemas/ProblemDocument"


class Thing(BaseModel):
    name: str
    count: int


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def tiny_app(max_body_bytes: int | None = LIMIT) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, max_body_bytes=max_body_bytes)

    @app.post("/things", status_code=201, responses=problem_responses(401, 409))
    async def create(thing: Thing) -> Thing:
        if thing.name == "taken":
            raise Problem(409, "Conflict", "That name is taken.", kind="conflict")
        return thing

    @app.get("/things/{thing_id}", responses=problem_responses(404))
    async def read(thing_id: int) -> Thing:
        raise Problem(404, "No such thing", f"No thing {thing_id}.", kind="not-found")

    @app.get("/exotic")
    async def exotic() -> None:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", 0, b"\xff\xfe", Unprintable()),
                    "type": "value_error",
                    "msg": Unprintable(),
                    "input": b"\x00\xff",
                    "ctx": {"error": ValueError("bad")},
                },
                "not even a dict",
            ]
        )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    app.include_router(health_router(lambda: True, Health(), []))
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(tiny_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    ProblemDocument.model_validate(body)
    assert body["status"] == status
    assert body["type"] == f"https://refunds.example.com/problems/{kind}"
    return body


# --- body limit -----------------------------------------------------------------------


def test_under_the_limit_passes(client: TestClient) -> None:
    response = client.post("/things", json={"name": "a" * (LIMIT - 100), "count": 1})
    assert response.status_code == 201, response.text


def test_content_length_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post(
        "/things", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 413, "body-too-large")
    assert body["title"] == "Request body too large"
    assert str(LIMIT) in body["detail"]
    assert body["instance"] == "/things"


def test_exactly_the_limit_is_not_413(client: TestClient) -> None:
    # Exactly LIMIT bytes of JSON: the body is read and judged on its content.
    body = b'{"name": "' + b"a" * (LIMIT - 24) + b'", "count": 1}'
    assert len(body) == LIMIT
    response = client.post("/things", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


async def test_streamed_body_over_the_limit_is_413_without_content_length() -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            sent.append(1)
            yield b"x" * 300

    transport = httpx.ASGITransport(app=tiny_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        request = http.build_request(
            "POST", "/things", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = await http.send(request)
    assert_problem(response, 413, "body-too-large")
    assert len(sent) < 10  # reading stopped soon after the limit, not at the end of the stream


async def test_streamed_body_under_the_limit_passes() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": '
        yield b'"streamed", '
        yield b'"count": 2}'

    transport = httpx.ASGITransport(app=tiny_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post(
            "/things", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 201, response.text
    assert response.json() == {"name": "streamed", "count": 2}


async def test_the_middleware_stops_reading_once_over_the_limit() -> None:
    """Plain ASGI: the limiter passes chunks through and stops pulling at the limit."""
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 300, "more_body": pulled < 50}

    async def reads_everything(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await BodyLimit(reads_everything, max_bytes=LIMIT)(scope, receive, send)
    assert pulled == 4  # 1200 bytes > 1000: the fourth chunk tips it, nothing more is read
    assert sent[0]["status"] == 413
    assert (b"content-type", PROBLEM_JSON.encode()) in sent[0]["headers"]


async def test_an_answer_the_app_makes_of_a_cut_body_is_replaced_by_413() -> None:
    chunks = iter([b"x" * 600, b"x" * 600, b"x" * 600])

    async def receive() -> Message:
        body = next(chunks, b"")
        return {"type": "http.request", "body": body, "more_body": bool(body)}

    async def swallows(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await BodyLimit(swallows, max_bytes=LIMIT)(scope, receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


def test_no_limit_when_disabled() -> None:
    with TestClient(tiny_app(max_body_bytes=None)) as http:
        response = http.post("/things", json={"name": "a" * 10 * LIMIT, "count": 1})
    assert response.status_code == 201


# --- problem documents ----------------------------------------------------------------


def test_route_problems_are_problem_json(client: TestClient) -> None:
    assert_problem(client.get("/things/7"), 404, "not-found")
    assert_problem(client.post("/things", json={"name": "taken", "count": 1}), 409, "conflict")
    assert_problem(client.get("/nowhere"), 404, "http-404")
    body = assert_problem(client.get("/boom"), 500, "internal")
    assert "bug" not in body["detail"]


def test_validation_errors_name_each_field(client: TestClient) -> None:
    body = assert_problem(client.post("/things", json={"count": "many"}), 422, "validation")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("name", "missing"),
        ("count", "int_parsing"),
    }
    path_error = assert_problem(client.get("/things/seven"), 422, "validation")
    assert path_error["errors"][0]["field"] == "path.thing_id"


@pytest.mark.parametrize(
    ("content", "headers", "status", "kind"),
    [
        (b"name=x", {"content-type": "text/plain"}, 415, "unsupported-media-type"),
        (
            b'{"name": "x", "count": 1}',
            {"content-type": "text/plain"},
            415,
            "unsupported-media-type",
        ),
        (b'{"name": "x", "count": 1}', {}, 415, "unsupported-media-type"),
        (b"", {"content-type": "application/json"}, 422, "validation"),
        (b"", {}, 422, "validation"),
        (b'{"name": ', {"content-type": "application/json"}, 400, "malformed-json"),
        (b"\xff\xfe\x00", {"content-type": "application/json"}, 400, "malformed-json"),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "validation"),
        (b"null", {"content-type": "application/json"}, 422, "validation"),
    ],
)
def test_odd_bodies_are_4xx_problems(
    client: TestClient, content: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    assert_problem(client.post("/things", content=content, headers=headers), status, kind)


def test_exotic_validation_errors_still_answer(client: TestClient) -> None:
    body = assert_problem(client.get("/exotic"), 422, "validation")
    first, second = body["errors"]
    assert first["field"] == "0.\ufffd\ufffd.<Unprintable>"
    assert first["message"] == "<Unprintable>"
    assert second == {"field": "body", "code": "invalid", "message": "not even a dict"}


def test_field_errors_are_bounded() -> None:
    error = RequestValidationError(
        [{"loc": ("body", "x" * 1000), "type": "t", "msg": "m" * 10_000, "input": None}]
    )
    (entry,) = field_errors(error)
    assert len(entry["field"]) <= 300
    assert len(entry["message"]) <= 500


def test_many_validation_errors_are_capped(client: TestClient) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/many")
    async def many(values: list[int]) -> None:
        return None

    with TestClient(app) as http:
        body = http.post("/many", json=["x"] * 300).json()
    assert body["detail"].startswith("300 field(s) failed validation.")
    assert len(body["errors"]) == 100


# --- OpenAPI --------------------------------------------------------------------------


def test_openapi_documents_problems(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["ProblemDocument"]["required"]) == {"type", "title", "status", "detail"}
    assert schemas["ProblemDocument"]["examples"]
    assert "FieldError" in schemas
    ProblemDocument.model_validate(schemas["ProblemDocument"]["examples"][0])

    create = doc["paths"]["/things"]["post"]["responses"]
    for status in ("400", "401", "409", "413", "415", "422", "500"):
        assert create[status]["content"] == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
        assert create[status]["description"]
    assert "WWW-Authenticate" in create["401"]["headers"]
    assert "Malformed" in create["400"]["description"]
    read = doc["paths"]["/things/{thing_id}"]["get"]["responses"]
    assert set(read) == {"200", "404", "422", "500"}
    assert read["404"]["content"][PROBLEM_JSON]["schema"]["$ref"] == PROBLEM_REF
    readyz = doc["paths"]["/readyz"]["get"]["responses"]
    assert set(readyz) == {"200", "503", "500"}


def test_openapi_has_no_framework_validation_error_left(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "ValidationError" not in doc["components"]["schemas"]
    assert "HTTPValidationError" not in str(doc)
    for item in doc["paths"].values():
        for operation in item.values():
            if "422" in operation["responses"]:
                assert list(operation["responses"]["422"]["content"]) == [PROBLEM_JSON]


def test_openapi_is_stable_across_calls() -> None:
    app = tiny_app()
    assert app.openapi() == app.openapi()
    install_problem_handlers(FastAPI())  # installing on another app is independent
    with TestClient(app) as http:
        assert http.get("/openapi.json").json() == app.openapi()


def test_problem_responses_shape() -> None:
    documented = problem_responses(401, 429)
    assert set(documented) == {401, 429}
    assert documented[429]["content"][PROBLEM_JSON]["schema"] == {"$ref": PROBLEM_REF}
    assert "Too many" in documented[429]["description"]


# --- readiness ------------------------------------------------------------------------


def test_readiness_waits_only_for_the_parts_this_replica_runs_and_ends_when_draining() -> None:
    leading = {"relay": False}
    health = Health(expects=lambda part: leading.get(part, True))
    health.report("consumer", True)
    app = FastAPI()
    app.include_router(health_router(lambda: True, health, ["relay", "consumer"]))
    with TestClient(app) as client:
        # A follower: the relay runs in the replica leading it, so this one is ready.
        assert client.get("/readyz").json() == {
            "status": "ready",
            "store": "ok",
            "broker": "ok",
            "draining": False,
        }
        leading["relay"] = True  # now it leads, and the relay has not reached the broker
        waiting = client.get("/readyz")
        assert (waiting.status_code, waiting.json()["broker"]) == (503, "waiting for relay")
        health.report("relay", True)
        assert client.get("/readyz").status_code == 200
        health.draining = True  # SIGTERM: not ready at once, whatever else holds
        draining = client.get("/readyz")
        assert draining.status_code == 503
        assert draining.json()["status"] == "not_ready"
        assert draining.json()["draining"] is True
