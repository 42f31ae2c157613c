"""The gateway's HTTP app, and `main`, which serves it as the environment configures."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from sandbox.gateway.callbacks import Completer
from sandbox.gateway.faults import Faults
from sandbox.gateway.fx import CURRENCY_PATTERN, FX_AS_OF, FX_RATES, FX_SOURCE
from sandbox.gateway.protocol import (
    FAILED_STATUSES,
    LEDGER_FILE,
    REPLAY_HEADER,
    ConflictError,
    ControlRequest,
    RefundRequest,
    callback_secret_from_env,
)
from sandbox.gateway.settlement import parse_day, render_settlement
from sandbox.gateway.store import Store
from sandbox.serving import EXIT_BAD_CONFIG, data_dir_from_env, host_from_env, port_from_env
from shared.http_server import serve_http

DEFAULT_PORT = 8010


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _injected_failure(status: int, retry_after: int) -> JSONResponse:
    # Real providers pair 429 with Retry-After; callers' backoff should honour it.
    headers = {"Retry-After": str(retry_after)} if status == 429 else None
    return _error(status, "injected failure: nothing was recorded", headers)


def _refund_response(refund: dict[str, Any], *, replayed: bool) -> JSONResponse:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    if refund["status"] in FAILED_STATUSES:
        # 402 like Stripe's "parameters were valid but the request failed": final, not retryable.
        error = f"refund {refund['status']}: {refund['failure_reason']}"
        return JSONResponse({"error": error, **refund}, status_code=402, headers=headers)
    return JSONResponse(refund, headers=headers)


def create_app(data_dir: Path, *, callback_secret: str | None = None) -> FastAPI:
    """Build the gateway app whose ledger lives in ``data_dir``.

    ``callback_secret`` signs callbacks; by default it comes from SANDBOX_CALLBACK_SECRET.
    Asynchronous completion and callbacks need the app's lifespan to run (uvicorn does).
    """
    secret = callback_secret if callback_secret is not None else callback_secret_from_env()
    store = Store(Path(data_dir) / LEDGER_FILE)
    faults = Faults()
    completer = Completer(store, faults, secret)
    stopping = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopping.clear()
        store.open()
        worker = asyncio.create_task(completer.run())
        try:
            yield
        finally:
            stopping.set()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            completer.flush()
            store.close()

    app = FastAPI(title="Sandbox payment gateway", lifespan=lifespan)
    app.state.ledger = store
    app.state.faults = faults
    app.state.completer = completer

    def catch_up() -> None:
        # Queries see a refund complete at its due time even before the completer runs.
        if store.complete_due(time.time(), faults.take_dropped_callback):
            completer.wake()

    async def stall(seconds: float) -> None:
        # Only injected faults stall: in a thread, so a stop ends the wait at once.
        await asyncio.to_thread(stopping.wait, seconds)

    async def execute(body: RefundRequest) -> JSONResponse:
        failure = faults.take_failure()
        if failure is not None:
            return _injected_failure(*failure)
        timeout = faults.take_timeout(after_commit=False)
        if timeout is not None:
            await stall(timeout)
            return _error(504, "injected timeout: nothing was recorded")
        catch_up()
        try:
            outcome = store.accept(
                body,
                faults.plan,
                faults.take_dropped_callback,
                claim_callbacks=completer.running,
            )
        except ConflictError:
            return _error(409, "merchant_refund_no reused with different parameters")
        if outcome.deliveries:
            completer.hand_over(outcome.deliveries)
        elif not outcome.replayed and outcome.refund["status"] == "processing":
            completer.wake()  # it completes later: the completer's next look must be sooner
        if faults.take_failure_after_commit():
            return _error(503, "injected failure after commit: the refund was recorded")
        timeout = faults.take_timeout(after_commit=True)
        if timeout is not None:
            await stall(timeout)  # the money moved; the caller has most likely given up by now
        return _refund_response(outcome.refund, replayed=outcome.replayed)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # On the event loop: a refund is a few short SQLite statements and one commit that is not
    # fsynced (WAL), cheaper than the hop to the thread pool it took. The other endpoints are
    # sync (the thread pool): reads of the whole ledger may take a while.
    @app.post("/v1/refunds")
    async def create_refund(body: RefundRequest) -> JSONResponse:
        delay = faults.delay_seconds()
        response = await execute(body)
        if delay > 0:
            # Delaying after the work mimics a slow answer whose refund already happened.
            await stall(delay)
        return response

    @app.get("/v1/refunds/{merchant_refund_no}")
    def get_refund(merchant_refund_no: str) -> JSONResponse:
        catch_up()
        refund = store.get(merchant_refund_no)
        if refund is None:
            return _error(404, "unknown merchant_refund_no")
        return JSONResponse(refund)

    @app.get("/v1/fx/rates")
    def get_fx_rate(base: str, quote: str) -> JSONResponse:
        if not (CURRENCY_PATTERN.match(base) and CURRENCY_PATTERN.match(quote)):
            return _error(400, "base and quote must be ISO 4217 codes, e.g. CNY")
        rate = FX_RATES.get((base, quote))
        if rate is None:
            return _error(404, f"no rate for {base}/{quote}")
        return JSONResponse(
            {
                "base": base,
                "quote": quote,
                "rate": format(rate, "f"),
                "source": FX_SOURCE,
                "as_of": FX_AS_OF,
            }
        )

    @app.get("/ledger")
    def get_ledger() -> dict[str, Any]:
        catch_up()
        entries = store.ledger()
        return {"count": len(entries), "entries": entries}

    @app.get("/settlements/{day}.csv")
    def get_settlement(day: str) -> Response:
        parsed = parse_day(day)
        if parsed is None:
            return _error(400, "settlement day must be a date: YYYY-MM-DD")
        catch_up()
        report = render_settlement(parsed, store.completed_on(parsed), faults.settlement_rules())
        return Response(
            report,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="settlement-{day}.csv"'},
        )

    @app.get("/callbacks")
    def get_callbacks() -> dict[str, Any]:
        completer.flush()
        callbacks = store.callbacks()
        return {"count": len(callbacks), "callbacks": callbacks}

    @app.get("/control")
    def get_control() -> dict[str, Any]:
        return faults.snapshot()

    @app.post("/control")
    def set_control(change: ControlRequest) -> dict[str, Any]:
        return faults.apply(change)

    return app


def _config_from_env() -> tuple[str, int, Path, str]:
    host = host_from_env("SANDBOX_GATEWAY_HOST")
    port = port_from_env("SANDBOX_GATEWAY_PORT", DEFAULT_PORT)
    return host, port, data_dir_from_env(), callback_secret_from_env()


def main() -> None:
    """Serve the gateway as configured by SANDBOX_GATEWAY_HOST/PORT, SANDBOX_DATA_DIR and
    SANDBOX_CALLBACK_SECRET."""
    try:
        host, port, data_dir, secret = _config_from_env()
    except ValueError as exc:
        print(f"sandbox gateway: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    app = create_app(data_dir, callback_secret=secret)
    serve_http(app, host=host, port=port, log_level="info")
