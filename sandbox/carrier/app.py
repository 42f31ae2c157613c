"""The carrier sandbox's HTTP app (Kuaidi100 endpoints and test controls), and `main`."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sandbox.carrier.faults import Faults
from sandbox.carrier.protocol import (
    CARRIERS,
    NUMBER_MAX,
    NUMBER_MIN,
    QUERY_CODES,
    STORE_FILE,
    SUBSCRIBE_CODES,
    AdvanceRequest,
    Carrier,
    ControlRequest,
    ShipmentRequest,
    credentials_from_env,
    normalize_number,
    query_sign,
)
from sandbox.carrier.pushes import Pusher
from sandbox.carrier.store import ShipmentClosed, Store, UnknownShipment
from sandbox.carrier.trail import last_result
from sandbox.serving import EXIT_BAD_CONFIG, data_dir_from_env, host_from_env, port_from_env
from shared.http_server import serve_http

DEFAULT_PORT = 8040
_CALLBACK_URL = re.compile(r"^https?://[^\s/]+\S*$")


class Refused(Exception):
    """A Kuaidi100 request refused with a documented returnCode."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _answer(codes: dict[str, str], code: str, detail: str = "") -> JSONResponse:
    message = codes[code] + (f": {detail}" if detail else "")
    return JSONResponse({"result": code == "200", "returnCode": code, "message": message})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form Kuaidi100's clients post (python-multipart is not needed)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _json_object(text: str | None, code: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "")
    except ValueError:
        raise Refused(code, "param is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(code, "param is not a JSON object")
    return value


def carrier_and_number(company: Any, number: Any, code: str) -> tuple[Carrier, str]:
    """The carrier of a lower-case code and the number in its format, or Refused(code)."""
    carrier = CARRIERS.get(company) if isinstance(company, str) else None
    if carrier is None:
        raise Refused(code, f"unsupported company {company!r}")
    if not isinstance(number, str) or not NUMBER_MIN <= len(number.strip()) <= NUMBER_MAX:
        raise Refused(code, f"number must be {NUMBER_MIN}-{NUMBER_MAX} characters")
    normalized = normalize_number(number)
    if not carrier.accepts(normalized):
        raise Refused(code, f"{normalized} is not a {company} number")
    return carrier, normalized


def create_app(data_dir: Path, *, key: str | None = None, customer: str | None = None) -> FastAPI:
    """The carrier sandbox whose shipments live in ``data_dir``; pushes need the lifespan."""
    if key is None or customer is None:
        env_key, env_customer = credentials_from_env()
        key = key if key is not None else env_key
        customer = customer if customer is not None else env_customer
    store = Store(Path(data_dir) / STORE_FILE)
    faults = Faults()
    pusher = Pusher(store, faults)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.open()
        worker = asyncio.create_task(pusher.run())
        try:
            yield
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            store.close()

    app = FastAPI(title="Sandbox carrier (Kuaidi100 protocol)", lifespan=lifespan)
    app.state.store = store
    app.state.faults = faults

    def subscribe(form: dict[str, str]) -> str:
        if form.get("schema", "json") != "json":
            raise Refused("700", "the sandbox answers schema=json only")
        param = _json_object(form.get("param"), "700")
        if "key" not in param:
            raise Refused("700", "key is missing")
        if param["key"] != key:
            raise Refused("600")
        carrier, number = carrier_and_number(param.get("company"), param.get("number"), "700")
        parameters = param.get("parameters")
        url = parameters.get("callbackurl") if isinstance(parameters, dict) else None
        if not isinstance(url, str) or not _CALLBACK_URL.match(url):
            raise Refused("700", "parameters.callbackurl must be an http(s) URL")
        salt = parameters.get("salt") if isinstance(parameters, dict) else None
        salt = salt if isinstance(salt, str) and salt else None
        if not store.subscribe(carrier.code, number, url, salt, faults.take_push):
            return "501"
        pusher.wake()
        return "200"

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/poll")
    async def poll(request: Request) -> JSONResponse:
        form = await _form(request)
        try:
            code = await asyncio.to_thread(subscribe, form)
        except Refused as refused:
            return _answer(SUBSCRIBE_CODES, refused.code, refused.detail)
        return _answer(SUBSCRIBE_CODES, code)

    def query(form: dict[str, str]) -> dict[str, Any]:
        if not all(form.get(name) for name in ("customer", "sign", "param")):
            raise Refused("400", "customer, sign and param are required")
        if form["customer"] != customer:
            raise Refused("400", "unknown customer")
        if form["sign"] != query_sign(form["param"], key, customer):
            raise Refused("503")
        param = _json_object(form["param"], "400")
        try:
            carrier, number = carrier_and_number(param.get("com"), param.get("num"), "400")
        except Refused as refused:
            # A known carrier but a number it never issued: nothing to find.
            code = "500" if param.get("com") in CARRIERS else "400"
            raise Refused(code, refused.detail) from None
        shipment = store.get(carrier.code, number)
        if shipment is None or not shipment["trail"]:
            raise Refused("500")
        trail = shipment["trail"]
        if param.get("order") == "asc":
            trail = list(reversed(trail))
        return last_result(carrier.code, number, shipment["stage"], trail)

    @app.post("/poll/query.do")
    async def query_do(request: Request) -> Response:
        form = await _form(request)
        failure = faults.take_query_failure()
        if isinstance(failure, int):
            return PlainTextResponse("injected failure", status_code=failure)
        if failure is not None:
            return _answer(QUERY_CODES, failure)
        try:
            return JSONResponse(await asyncio.to_thread(query, form))
        except Refused as refused:
            return _answer(QUERY_CODES, refused.code, refused.detail)

    # Test controls: ours, not Kuaidi100's. Sync, so SQLite runs in the thread pool.
    @app.get("/sandbox/carriers")
    def carriers() -> dict[str, Any]:
        return {
            code: {"name": carrier.name, "pattern": carrier.pattern.pattern}
            for code, carrier in CARRIERS.items()
        }

    @app.post("/sandbox/shipments")
    def create_shipment(body: ShipmentRequest) -> JSONResponse:
        carrier = CARRIERS.get(body.company)
        if carrier is None:
            return _error(422, f"unknown company {body.company!r}")
        try:
            number = body.number or carrier.mint()
            _, number = carrier_and_number(body.company, number, "700")
        except Refused as refused:
            return _error(422, refused.detail)
        shipment, created = store.create(carrier.code, number)
        return JSONResponse(shipment, status_code=201 if created else 200)

    @app.get("/sandbox/shipments")
    def list_shipments() -> dict[str, Any]:
        shipments = store.shipments()
        return {"count": len(shipments), "shipments": shipments}

    @app.get("/sandbox/shipments/{company}/{number}")
    def get_shipment(company: str, number: str) -> JSONResponse:
        shipment = store.get(company, normalize_number(number))
        if shipment is None:
            return _error(404, f"no {company} shipment {number}")
        return JSONResponse(shipment)

    def change(company: str, number: str, act: Any) -> JSONResponse:
        try:
            shipment = act(company, normalize_number(number))
        except UnknownShipment as error:
            return _error(404, str(error))
        except ShipmentClosed as error:
            return _error(409, str(error))
        pusher.wake()
        return JSONResponse(shipment)

    @app.post("/sandbox/shipments/{company}/{number}/advance")
    def advance(company: str, number: str, body: AdvanceRequest | None = None) -> JSONResponse:
        to = body.to if body is not None else None
        return change(company, number, lambda c, n: store.advance(c, n, to, faults.take_push))

    @app.post("/sandbox/shipments/{company}/{number}/abort")
    def abort(company: str, number: str) -> JSONResponse:
        return change(company, number, lambda c, n: store.abort(c, n, faults.take_push))

    @app.get("/sandbox/pushes")
    def list_pushes() -> dict[str, Any]:
        pushes = store.pushes()
        return {"count": len(pushes), "pushes": pushes}

    @app.get("/sandbox/control")
    def get_control() -> dict[str, Any]:
        return faults.snapshot()

    @app.post("/sandbox/control")
    def set_control(body: ControlRequest) -> dict[str, Any]:
        return faults.apply(body)

    return app


def main() -> None:
    """Serve the carrier as SANDBOX_CARRIER_HOST/PORT/KEY/CUSTOMER and SANDBOX_DATA_DIR say."""
    try:
        host = host_from_env("SANDBOX_CARRIER_HOST")
        port = port_from_env("SANDBOX_CARRIER_PORT", DEFAULT_PORT)
        key, customer = credentials_from_env()
    except ValueError as exc:
        print(f"sandbox carrier: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    app = create_app(data_dir_from_env(), key=key, customer=customer)
    serve_http(app, host=host, port=port, log_level="info")
