"""The emulator's HTTP app: Alipay's `gateway.do` for refunds, refund queries and bill
URLs; bill downloads; and the sandbox-only test and control endpoints (sandbox/ALIPAY.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sandbox.alipay import dev_keys
from sandbox.alipay.bill import render_detail, render_zip
from sandbox.alipay.faults import ControlRequest, Faults
from sandbox.alipay.notifier import Notifier
from sandbox.alipay.protocol import (
    BUSINESS_FAILED,
    INVALID,
    METHODS,
    MISSING,
    REFUND,
    REFUND_QUERY,
    SUCCESS,
    TIME_FORMAT,
    beijing,
    failure,
    fen_of,
    private_key,
    public_key,
    rsa2_valid,
    signed_answer,
    signing_string,
    yuan,
)
from sandbox.alipay.store import Store
from shared.http_server import serve_http

DEFAULT_PORT = 8070
REQUIRED = ("method", "charset", "sign_type", "sign", "timestamp", "version")
OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TRADE_NO = re.compile(r"^[0-9]{28}$")
ANSWER_TYPE = "application/json;charset=utf-8"


class TradeRequest(BaseModel):
    """`POST /test/trades`: a payment refunds can draw on."""

    model_config = ConfigDict(extra="forbid", strict=True)
    out_trade_no: str = Field(pattern=OUT_TRADE_NO.pattern)
    total_amount: int = Field(gt=0)  # fen
    status: str = Field(default="TRADE_SUCCESS", pattern=r"^TRADE_(SUCCESS|CLOSED|FINISHED)$")


class AppRequest(BaseModel):
    """`POST /test/apps`: another app whose requests the gateway accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    app_id: str = Field(pattern=r"^[0-9]{16}$")
    app_public_key: str


def create_app(
    data_dir: Path | None = None,
    *,
    alipay_private_key: str = dev_keys.ALIPAY_PRIVATE_KEY,
    apps: dict[str, str] | None = None,
    seller_id: str = dev_keys.DEV_SELLER_ID,
) -> FastAPI:
    """The emulator, its state under `data_dir` (in memory when None). `apps` maps app ids
    to their public keys (default: the dev app). Notifications need the lifespan (uvicorn)."""
    store = Store(data_dir)
    store.open()
    for app_id, key in (apps or {dev_keys.DEV_APP_ID: dev_keys.APP_PUBLIC_KEY}).items():
        store.add_app(app_id, key)
    faults = Faults()
    signer = private_key(alipay_private_key)
    notifier = Notifier(store, faults, signer, dev_keys.DEV_APP_ID, seller_id)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(notifier.run())
        try:
            yield
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            store.close()

    app = FastAPI(title="Alipay emulator", lifespan=lifespan)

    def answer(method: str, body: dict[str, Any], *, signed: bool = True) -> Response:
        text = signed_answer(method, body, signer if signed else None)
        return Response(text.encode(), media_type=ANSWER_TYPE)

    @app.api_route("/gateway.do", methods=["GET", "POST"])
    async def gateway(request: Request) -> Response:
        params = await _params(request)
        if params is None:
            return answer(
                "", failure(INVALID, "isv.invalid-charset", "无法解析的请求"), signed=False
            )
        method = params.get("method", "")
        app_id = params.get("app_id", "")
        if not app_id:
            return answer(
                method, failure(MISSING, "isv.missing-app-id", "缺少AppID参数"), signed=False
            )
        key_text = store.app_key(app_id)
        if key_text is None:
            return answer(
                method, failure(INVALID, "isv.invalid-app-id", "无效的AppID参数"), signed=False
            )
        for name in REQUIRED:
            if not params.get(name):
                return answer(
                    method,
                    failure(MISSING, f"isv.missing-{name.replace('_', '-')}", f"缺少{name}参数"),
                )
        if params["sign_type"] != "RSA2":
            return answer(method, failure(INVALID, "isv.invalid-signature-type", "无效的签名类型"))
        if method not in METHODS:
            return answer(method, failure(INVALID, "isv.invalid-method", "不存在的方法名"))
        if not rsa2_valid(
            public_key(key_text), signing_string(params, drop=("sign",)), params["sign"]
        ):
            return answer(method, failure(INVALID, "isv.invalid-signature", "验签出错"))
        try:
            datetime.strptime(params["timestamp"], TIME_FORMAT)
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            return answer(method, failure(INVALID, "isv.invalid-parameter", "参数无效"))
        if not isinstance(biz, dict):
            return answer(method, failure(INVALID, "isv.invalid-parameter", "biz_content无效"))
        if method == REFUND:
            return await refund(params, biz, answer)
        if method == REFUND_QUERY:
            return answer(method, refund_query(biz))
        return answer(method, bill_url(request, app_id, biz))

    async def refund(params: dict[str, str], biz: dict[str, Any], reply: Any) -> Response:
        switches = faults.switches
        if faults.take("fail_next"):
            return JSONResponse(
                {"error": "injected failure: nothing was recorded"}, switches.fail_status
            )
        if faults.take("system_error_next"):
            return reply(REFUND, failure(BUSINESS_FAILED, "ACQ.SYSTEM_ERROR", "系统错误"))
        outcome = _refund(params, biz)
        notifier.wake()  # announced as the money moves, before any later fault is armed
        if faults.take("timeout_after_commit_next"):
            await asyncio.sleep(switches.timeout_ms / 1000)
        return reply(REFUND, outcome)

    def _trade(biz: dict[str, Any], *, create: bool) -> dict[str, Any] | None:
        trade_no = biz.get("trade_no")
        out_trade_no = biz.get("out_trade_no")
        trade = store.trade(trade_no if isinstance(trade_no, str) else None, out_trade_no)
        if trade is not None or not create or not faults.switches.auto_trades:
            return trade
        total = faults.switches.default_trade_amount
        if isinstance(trade_no, str) and TRADE_NO.match(trade_no):
            return store.create_trade(total=total, trade_no=trade_no)
        if isinstance(out_trade_no, str) and OUT_TRADE_NO.match(out_trade_no) and not trade_no:
            return store.create_trade(total=total, out_trade_no=out_trade_no)
        return None

    def _refund(params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        amount = fen_of(biz.get("refund_amount"))
        if amount is None:
            return failure(BUSINESS_FAILED, "ACQ.INVALID_PARAMETER", "refund_amount无效")
        request_no = biz.get("out_request_no")
        if not isinstance(request_no, str) or not 0 < len(request_no) <= 64:
            # Without it Alipay takes the trade number; payout always sends one.
            return failure(BUSINESS_FAILED, "ACQ.INVALID_PARAMETER", "out_request_no无效")
        trade = _trade(biz, create=True)
        if trade is None:
            return failure(BUSINESS_FAILED, "ACQ.TRADE_NOT_EXIST", "交易不存在")
        ids = {"trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"] or ""}
        earlier = store.refund(trade["trade_no"], request_no)
        now = time.time()
        if earlier is not None:
            if earlier["amount"] != amount:
                return failure(
                    BUSINESS_FAILED, "ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致", **ids
                )
            # The same request again: nothing moves twice, and fund_change says so.
            return _accepted(ids, store.trade(trade["trade_no"], None), earlier, "N", now)
        if trade["status"] != "TRADE_SUCCESS":
            return failure(BUSINESS_FAILED, "ACQ.TRADE_STATUS_ERROR", "交易状态不合法", **ids)
        if amount > trade["total"] - trade["refunded"]:
            return failure(BUSINESS_FAILED, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限", **ids)
        if faults.take("balance_short_next"):
            return failure(BUSINESS_FAILED, "ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足", **ids)
        processing = faults.take("processing_next")
        paid_at = now + faults.switches.processing_ms / 1000 if processing else now
        notify_url = params.get("notify_url") or None
        made = store.add_refund(
            trade["trade_no"], request_no, amount, at=now, paid_at=paid_at, notify_url=notify_url
        )
        fund_change = "N" if processing else "Y"
        return _accepted(ids, store.trade(trade["trade_no"], None), made, fund_change, now)

    def _accepted(
        ids: dict[str, str], trade: Any, refund: dict[str, Any], fund_change: str, now: float
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": SUCCESS[0], "msg": SUCCESS[1], **ids,
            "buyer_logon_id": "san***@example.com", "fund_change": fund_change,
            "refund_fee": yuan(trade["refunded"]), "send_back_fee": yuan(refund["amount"]),
        }  # fmt: skip
        if refund["paid_at"] <= now:
            body["gmt_refund_pay"] = beijing(refund["paid_at"])
        return body

    def refund_query(biz: dict[str, Any]) -> dict[str, Any]:
        request_no = biz.get("out_request_no")
        if not isinstance(request_no, str) or not request_no:
            return failure(BUSINESS_FAILED, "ACQ.INVALID_PARAMETER", "out_request_no无效")
        trade = _trade(biz, create=False)
        if trade is None:
            return failure(BUSINESS_FAILED, "ACQ.TRADE_NOT_EXIST", "交易不存在")
        body: dict[str, Any] = {
            "code": SUCCESS[0], "msg": SUCCESS[1], "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"] or "", "out_request_no": request_no,
        }  # fmt: skip
        refund = store.refund(trade["trade_no"], request_no)
        # Only a refund whose money moved shows refund_status; else the answer is bare.
        if refund is not None and refund["paid_at"] <= time.time():
            body.update(
                total_amount=yuan(trade["total"]), refund_amount=yuan(refund["amount"]),
                refund_status="REFUND_SUCCESS",
            )  # fmt: skip
            options = biz.get("query_options")
            if isinstance(options, list) and "gmt_refund_pay" in options:
                body["gmt_refund_pay"] = beijing(refund["paid_at"])
        return body

    def bill_url(request: Request, app_id: str, biz: dict[str, Any]) -> dict[str, Any]:
        day = _day(biz.get("bill_date"))
        if biz.get("bill_type") != "trade" or day is None:
            return failure(BUSINESS_FAILED, "isp.bill_not_exist", "账单不存在")
        url = str(request.base_url).rstrip("/") + f"/bills/{app_id}/{day.isoformat()}.zip"
        return {"code": SUCCESS[0], "msg": SUCCESS[1], "bill_download_url": url}

    @app.get("/bills/{app_id}/{name}")
    async def bill(app_id: str, name: str) -> Response:
        stem, _, kind = name.partition(".")
        day = _day(stem)
        if store.app_key(app_id) is None or day is None or kind not in ("zip", "csv"):
            return JSONResponse({"error": "no such bill"}, 404)
        if kind == "csv":
            return Response(
                render_detail(store, seller_id, day), media_type="text/csv; charset=GBK"
            )
        return Response(render_zip(store, seller_id, day), media_type="application/zip")

    @app.post("/test/trades")
    async def create_trade(body: TradeRequest) -> JSONResponse:
        if store.trade(None, body.out_trade_no) is not None:
            return JSONResponse({"error": "out_trade_no exists"}, 409)
        trade = store.create_trade(
            total=body.total_amount, out_trade_no=body.out_trade_no, status=body.status
        )
        return JSONResponse(trade, 201)

    @app.get("/test/refunds")
    async def refunds() -> dict[str, Any]:
        # Read-only, for tests counting the money moved: every refund the emulator took,
        # paid (REFUND_SUCCESS) once its paid_at has passed, processing until then.
        now = time.time()
        found = [
            {
                "trade_no": refund["trade_no"],
                "out_trade_no": refund["out_trade_no"],
                "out_request_no": refund["out_request_no"],
                "amount": refund["amount"],
                "created_at": refund["created_at"],
                "paid_at": refund["paid_at"],
                "refund_status": "REFUND_SUCCESS" if refund["paid_at"] <= now else "PROCESSING",
            }
            for refund in store.refunds()
        ]
        return {"count": len(found), "refunds": found}

    @app.post("/test/apps")
    async def register_app(body: AppRequest) -> JSONResponse:
        try:
            public_key(body.app_public_key)
        except ValueError:
            return JSONResponse({"error": "app_public_key is not an RSA public key"}, 422)
        store.add_app(body.app_id, body.app_public_key)
        return JSONResponse({"app_id": body.app_id}, 201)

    @app.get("/control")
    async def get_control() -> dict[str, Any]:
        return faults.switches.model_dump()

    @app.post("/control")
    async def set_control(body: ControlRequest) -> dict[str, Any]:
        return faults.update(body).model_dump()

    @app.get("/notifications")
    async def notifications() -> dict[str, Any]:
        found = store.notifications()
        return {"count": len(found), "notifications": found}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _params(request: Request) -> dict[str, str] | None:
    """Query and form parameters together (Alipay takes either), decoded by `charset`."""
    body = await request.body()
    raw = request.url.query + ("&" if request.url.query and body else "") + body.decode("latin-1")
    try:
        first = dict(parse_qsl(raw, keep_blank_values=True, encoding="latin-1"))
        codec = {"utf-8": "utf-8", "gbk": "gbk"}.get(first.get("charset", "utf-8").lower())
        if codec is None:
            return None
        return dict(parse_qsl(raw, keep_blank_values=True, encoding=codec, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None


def _day(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    """`python -m sandbox.alipay --port N --data-dir D`."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.alipay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data-dir", type=Path, default=None, help="state dir (memory if none)")
    args = parser.parse_args(argv)
    serve_http(create_app(args.data_dir), host=args.host, port=args.port, log_level="info")
