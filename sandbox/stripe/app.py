"""The Stripe emulator's HTTP app (Stripe's form-encoded v1 API for refunds, payments,
webhook endpoints and reports, plus `/_sandbox/*` admin endpoints), and `main`."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.stripe.dev_keys import DEV_SECRET_KEY, DEV_WEBHOOK_SECRET
from sandbox.stripe.faults import ControlRequest, Faults
from sandbox.stripe.report import REPORT_TYPE, render
from sandbox.stripe.store import STORE_FILE, RefundRefused, Store, new_id
from sandbox.stripe.webhooks import Webhooks
from shared.http_server import serve_http

DEFAULT_PORT = 8060
_PAYMENT = re.compile(r"^(pi|ch)_([A-Za-z0-9]{1,64})$")
_REFUND_PARAMS = {"payment_intent", "charge", "amount", "reason"}
_REFUND_EVENTS = ["refund.created", "refund.updated", "refund.failed"]


def stripe_error(
    status: int,
    kind: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _form(raw: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """Stripe's form encoding: plain fields, and `metadata[key]` into the metadata."""
    fields: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        match = re.fullmatch(r"metadata\[(.+)\]", key)
        if match:
            metadata[match.group(1)] = value
        else:
            fields[key] = value
    return fields, metadata


def _int(value: str | None, param: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) <= 0:
        raise RefundRefused(
            "parameter_invalid_integer", f"Invalid positive integer: {param}", param
        )
    return int(value)


def create_app(
    data_dir: Path | None = None,
    *,
    secret_keys: tuple[str, ...] = (DEV_SECRET_KEY,),
    webhook_urls: tuple[str, ...] = (),
    webhook_secret: str = DEV_WEBHOOK_SECRET,
    default_payment_currency: str = "usd",
) -> FastAPI:
    """The emulator with its state in `data_dir` (None: in memory). `webhook_urls` get an
    endpoint each, signed with `webhook_secret`. Webhooks and pending refunds settling
    need the lifespan (uvicorn runs it); queries settle what is due anyway."""
    store = Store(Path(data_dir) / STORE_FILE if data_dir is not None else None)
    faults = Faults(default_payment_currency)
    webhooks = Webhooks(store, faults)
    store.open()
    if not store.deliveries() and webhook_urls:
        for url in webhook_urls:
            store.add_endpoint(url, _REFUND_EVENTS, webhook_secret)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.open()
        worker = asyncio.create_task(webhooks.run())
        try:
            yield
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            store.close()

    app = FastAPI(title="Stripe emulator", lifespan=lifespan)
    app.state.store, app.state.faults = store, faults

    def drop() -> bool:
        return faults.take("drop_webhooks_next")

    def catch_up() -> None:
        if store.settle_due(drop):
            webhooks.wake()

    def authorized(request: Request) -> JSONResponse | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key in secret_keys:
            return None
        shown = f"{key[:8]}{'*' * 4}{key[-4:]}" if key else "none"
        return stripe_error(401, "invalid_request_error", f"Invalid API Key provided: {shown}")

    def make_refund(fields: dict[str, str], metadata: dict[str, str]) -> tuple[int, dict[str, Any]]:
        unknown = set(fields) - _REFUND_PARAMS
        if unknown:
            name = sorted(unknown)[0]
            raise RefundRefused("parameter_unknown", f"Received unknown parameter: {name}", name)
        given = [p for p in ("payment_intent", "charge") if fields.get(p)]
        if len(given) != 1:
            raise RefundRefused("parameter_missing", "Give exactly one of charge or payment_intent")
        match = _PAYMENT.match(fields[given[0]])
        if match is None or match.group(1) != {"payment_intent": "pi", "charge": "ch"}[given[0]]:
            raise RefundRefused(
                "resource_missing", f"No such {given[0]}: '{fields[given[0]]}'", given[0]
            )
        amount = _int(fields.get("amount"), "amount")
        default = (faults.get("default_payment_amount"), faults.get("default_payment_currency"))
        refund = store.create_refund(
            match.group(2), given[0], amount, metadata, faults.plan, default
        )
        store.drop_new(drop)
        webhooks.wake()
        return 200, refund

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/refunds")
    async def create_refund(request: Request) -> Response:
        if (refused := authorized(request)) is not None:
            return refused
        if faults.take("fail_next"):
            status = faults.get("fail_status")
            retry = (
                {"Retry-After": str(faults.get("retry_after_seconds"))} if status == 429 else None
            )
            kind = "rate_limit_error" if status == 429 else "api_error"
            return stripe_error(
                status, kind, "injected failure: nothing was recorded", headers=retry
            )
        raw = await request.body()
        fields, metadata = _form(raw)
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(b"POST /v1/refunds\n" + raw).hexdigest()
        if key:
            stored = await asyncio.to_thread(store.replay, key)
            if stored is not None:
                if stored[0] != fingerprint:
                    return stripe_error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                    )
                headers = {"Idempotent-Replayed": "true", "Idempotency-Key": key}
                return Response(stored[2], stored[1], headers, "application/json")
        await asyncio.to_thread(catch_up)
        try:
            status, body = await asyncio.to_thread(make_refund, fields, metadata)
        except RefundRefused as bad:
            error = {"type": "invalid_request_error", "code": bad.code, "message": bad.message}
            status, body = 400, {"error": {**error, "param": bad.param}}
        text = json.dumps(body)
        if key:  # Stripe saves the result of any request that started executing
            await asyncio.to_thread(store.remember, key, fingerprint, status, text)
        if status == 200 and faults.take("fail_after_commit_next"):
            return stripe_error(500, "api_error", "injected failure after the refund was made")
        if status == 200 and faults.take("timeout_after_commit_next"):
            await asyncio.sleep(faults.get("timeout_ms") / 1000)
        return Response(text, status, {"Idempotency-Key": key} if key else None, "application/json")

    @app.get("/v1/refunds/{refund_id}")
    def get_refund(refund_id: str, request: Request) -> JSONResponse:
        if (refused := authorized(request)) is not None:
            return refused
        catch_up()
        refund = store.refund(refund_id)
        if refund is None:
            return stripe_error(
                404,
                "invalid_request_error",
                f"No such refund: '{refund_id}'",
                code="resource_missing",
                param="id",
            )
        return JSONResponse(refund)

    @app.get("/v1/refunds")
    def list_refunds(
        request: Request,
        payment_intent: str | None = None,
        charge: str | None = None,
        limit: int = 10,
        starting_after: str | None = None,
    ) -> JSONResponse:
        if (refused := authorized(request)) is not None:
            return refused
        catch_up()
        payment = payment_intent or charge
        match = _PAYMENT.match(payment) if payment else None
        if payment and match is None:
            return stripe_error(
                404,
                "invalid_request_error",
                f"No such payment: '{payment}'",
                code="resource_missing",
            )
        if not 1 <= limit <= 100:
            return stripe_error(
                400,
                "invalid_request_error",
                "limit must be 1 to 100",
                code="parameter_invalid_integer",
                param="limit",
            )
        found, more = store.list_refunds(match.group(2) if match else None, limit, starting_after)
        return JSONResponse(
            {"object": "list", "data": found, "has_more": more, "url": "/v1/refunds"}
        )

    @app.post("/v1/payment_intents")
    async def create_payment_intent(request: Request) -> JSONResponse:
        """A payment to refund: confirmed and succeeded at once (any test card will do)."""
        if (refused := authorized(request)) is not None:
            return refused
        fields, metadata = _form(await request.body())
        try:
            amount = _int(fields.get("amount"), "amount")
        except RefundRefused as bad:
            return stripe_error(400, "invalid_request_error", bad.message, param="amount")
        currency = fields.get("currency", "")
        if amount is None or not re.fullmatch(r"[a-z]{3}", currency):
            return stripe_error(
                400,
                "invalid_request_error",
                "amount and currency are required",
                code="parameter_missing",
            )
        payment = store.create_payment(True, amount, currency)
        key = payment["key"]
        return JSONResponse(
            {
                "id": f"pi_{key}",
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount,
                "currency": currency,
                "latest_charge": f"ch_{key}",
                "metadata": metadata,
                "status": "succeeded",
                "created": payment["created"],
            }
        )

    @app.post("/v1/webhook_endpoints")
    async def create_webhook_endpoint(request: Request) -> JSONResponse:
        if (refused := authorized(request)) is not None:
            return refused
        pairs = parse_qsl((await request.body()).decode("utf-8", "replace"))
        url = dict(pairs).get("url", "")
        events = [v for k, v in pairs if re.fullmatch(r"enabled_events\[\d*\]", k)]
        if not re.match(r"^https?://", url) or not events:
            return stripe_error(
                400,
                "invalid_request_error",
                "url and enabled_events[] are required",
                code="parameter_missing",
            )
        return JSONResponse(store.add_endpoint(url, events))

    @app.post("/v1/reporting/report_runs")
    async def create_report_run(request: Request) -> JSONResponse:
        """Runs finish at once; the file id carries the interval it covers."""
        if (refused := authorized(request)) is not None:
            return refused
        fields, _ = _form(await request.body())
        start = fields.get("parameters[interval_start]", "")
        end = fields.get("parameters[interval_end]", "")
        if fields.get("report_type") != REPORT_TYPE or not (start.isdigit() and end.isdigit()):
            return stripe_error(
                400,
                "invalid_request_error",
                f"report_type {REPORT_TYPE} with parameters[interval_start] and "
                "parameters[interval_end] (Unix times) is served here",
            )
        file_id = f"file_bcfa_{start}_{end}"
        return JSONResponse(
            {
                "id": new_id("frr"),
                "object": "reporting.report_run",
                "report_type": REPORT_TYPE,
                "status": "succeeded",
                "parameters": {"interval_start": int(start), "interval_end": int(end)},
                "result": {
                    "id": file_id,
                    "object": "file",
                    "purpose": "finance_report_run",
                    "type": "csv",
                    "url": f"/v1/files/{file_id}/contents",
                },
            }
        )

    @app.get("/v1/files/{file_id}/contents")
    def file_contents(file_id: str, request: Request) -> Response:
        if (refused := authorized(request)) is not None:
            return refused
        match = re.fullmatch(r"file_bcfa_(\d+)_(\d+)", file_id)
        if match is None:
            return stripe_error(404, "invalid_request_error", f"No such file: '{file_id}'")
        catch_up()
        lines = store.balance_transactions(int(match.group(1)), int(match.group(2)))
        return Response(render(lines), media_type="text/csv; charset=utf-8")

    @app.get("/_sandbox/control")
    def get_control() -> dict[str, Any]:
        return faults.snapshot()

    @app.post("/_sandbox/control")
    def set_control(change: ControlRequest) -> dict[str, Any]:
        return faults.apply(change)

    @app.post("/_sandbox/clock")
    def advance_clock(body: dict[str, int]) -> dict[str, float]:
        """Moves the emulator's clock forward (idempotency keys expire, pending refunds settle)."""
        store.clock_offset += max(0, int(body.get("advance_seconds", 0)))
        catch_up()
        return {"now": store.now(), "offset_seconds": store.clock_offset}

    @app.post("/_sandbox/webhook_endpoints/{endpoint_id}/roll")
    def roll_secret(endpoint_id: str, body: dict[str, str] | None = None) -> JSONResponse:
        secret = store.roll_secret(endpoint_id, (body or {}).get("secret"))
        if secret is None:
            return stripe_error(
                404, "invalid_request_error", f"No such webhook endpoint: '{endpoint_id}'"
            )
        return JSONResponse({"id": endpoint_id, "secret": secret, "signing_with": 2})

    @app.get("/_sandbox/webhooks")
    def get_webhooks() -> dict[str, Any]:
        return {"deliveries": store.deliveries()}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.stripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="SQLite state (default: memory)"
    )
    parser.add_argument(
        "--secret-key", action="append", help=f"accepted API key (default: {DEV_SECRET_KEY})"
    )
    parser.add_argument(
        "--webhook-url", action="append", default=[], help="endpoint for refund events"
    )
    parser.add_argument("--webhook-secret", default=DEV_WEBHOOK_SECRET)
    parser.add_argument(
        "--default-currency",
        default="usd",
        help="currency of a payment nobody created here (lowercase; default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(
        args.data_dir,
        secret_keys=tuple(args.secret_key or (DEV_SECRET_KEY,)),
        webhook_urls=tuple(args.webhook_url),
        webhook_secret=args.webhook_secret,
        default_payment_currency=args.default_currency,
    )
    serve_http(app, host=args.host, port=args.port, log_level="info")
