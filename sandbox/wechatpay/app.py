"""The WeChat Pay emulator's HTTP app (APIv3 refunds, payment query, bill) and `main`."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.wechatpay import bill
from sandbox.wechatpay.faults import ControlRequest, Faults
from sandbox.wechatpay.ledger import BEIJING, Conflict, Ledger
from sandbox.wechatpay.notifier import Notifier
from sandbox.wechatpay.protocol import (
    Merchant,
    Platform,
    SignError,
    check_authorization,
    decrypt_sensitive,
    dev_merchant,
    dev_platform,
    signed_headers,
)
from shared.http_server import serve_http

DEFAULT_PORT = 8080
DEFAULT_PAYMENT_TOTAL = 1_000_000  # fen: what an unknown, well-formed payment was
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
_TRANSACTION_ID = re.compile(r"^[0-9]{1,32}$")
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")


def create_app(
    data_dir: Path | None = None,
    *,
    merchants: list[Merchant] | None = None,
    platform: Platform | None = None,
    default_payment_total: int = DEFAULT_PAYMENT_TOTAL,
) -> FastAPI:
    """The emulator; state in memory, snapshotted to `data_dir` when given. By default it
    knows the dev merchant and signs with the dev platform key (sandbox/wechatpay/dev_keys)."""
    known = {m.mchid: m for m in (merchants or [dev_merchant()])}
    our = platform or dev_platform()
    ledger = Ledger(data_dir, default_payment_total)
    faults = Faults()
    notifier = Notifier(ledger, faults, our, known)
    bills: dict[str, bytes] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(notifier.run())
        try:
            yield
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    app = FastAPI(title="Sandbox WeChat Pay (APIv3)", lifespan=lifespan)
    app.state.ledger = ledger
    app.state.faults = faults

    def answer(
        status: int, data: dict[str, Any] | None, extra: dict[str, str] | None = None
    ) -> Response:
        body = json.dumps(data, ensure_ascii=False).encode() if data is not None else b""
        headers = notifier_headers(body) | (extra or {})
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    def notifier_headers(body: bytes) -> dict[str, str]:
        return signed_headers(our, body, serial=notifier.serial())

    def error(status: int, code: str, message: str, **extra: str) -> Response:
        return answer(status, {"code": code, "message": message}, extra or None)

    async def authenticate(request: Request) -> tuple[Merchant, bytes]:
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        merchant = check_authorization(
            request.headers.get("authorization", ""),
            request.method,
            target,
            body,
            known,
            time.time(),
        )
        return merchant, body

    def catch_up() -> None:
        if ledger.complete_due(time.time(), faults.plan_notice):
            notifier.wake()

    @app.exception_handler(SignError)
    async def sign_error(_: Request, exc: SignError) -> Response:
        return error(401, "SIGN_ERROR", f"签名错误: {exc}")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v3/refund/domestic/refunds")
    async def create_refund(request: Request) -> Response:
        merchant, raw = await authenticate(request)
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return error(400, "PARAM_ERROR", "请求体不是JSON对象: body must be a JSON object")
        problem = _refund_problem(body)
        if problem is not None:
            return error(400, "PARAM_ERROR", problem)
        if faults.take("system_error_next"):
            return error(500, "SYSTEM_ERROR", "系统错误: injected, nothing was recorded")
        if faults.take("frequency_limited_next"):
            return error(429, "FREQUENCY_LIMITED", "频率超限: injected", **{"Retry-After": "1"})
        if faults.take("not_enough_next"):
            return error(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")
        catch_up()
        field = "transaction_id" if "transaction_id" in body else "out_trade_no"
        amount = body["amount"]
        with ledger.lock:
            payment = ledger.payment(merchant.mchid, field, body[field])
            earlier = ledger.refunds.get(body["out_refund_no"])
            if earlier is None:
                if amount["total"] != payment.total:
                    return error(
                        400,
                        "INVALID_REQUEST",
                        f"订单金额不一致: amount.total is not the order's total {payment.total}",
                    )
                left = payment.total - ledger.refunded(payment.transaction_id)
                if amount["refund"] > left:
                    return error(
                        400,
                        "INVALID_REQUEST",
                        "申请退款金额超过订单可退金额: "
                        f"only {left} fen of the payment remain refundable",
                    )
            delay = faults.get("processing_ms") / 1000.0
            try:
                refund, _ = ledger.create_refund(
                    merchant.mchid,
                    payment,
                    body["out_refund_no"],
                    amount["refund"],
                    body.get("notify_url"),
                    faults.outcome(),
                    delay,
                )
            except Conflict:
                return error(
                    400,
                    "INVALID_REQUEST",
                    "商户退款单号已存在且参数不一致: out_refund_no reused with other parameters",
                )
        catch_up()  # a refund due now is final in this very answer
        notifier.wake()
        if faults.take("system_error_after_commit_next"):
            return error(500, "SYSTEM_ERROR", "系统错误: injected after the refund was recorded")
        if faults.take("timeout_after_commit_next"):
            await asyncio.sleep(faults.get("timeout_ms") / 1000.0)
        with ledger.lock:
            return answer(200, refund.view())

    @app.get("/v3/refund/domestic/refunds/{out_refund_no}")
    async def query_refund(out_refund_no: str, request: Request) -> Response:
        merchant, _ = await authenticate(request)
        if faults.take("system_error_next"):
            return error(500, "SYSTEM_ERROR", "系统错误: injected")
        catch_up()
        with ledger.lock:
            refund = ledger.refunds.get(out_refund_no)
            if refund is None or refund.mchid != merchant.mchid:
                return error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return answer(200, refund.view())

    @app.post("/v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund")
    async def apply_abnormal_refund(refund_id: str, request: Request) -> Response:
        merchant, raw = await authenticate(request)
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return error(400, "PARAM_ERROR", "body must be a JSON object")
        kind = body.get("type")
        if kind not in ("USER_BANK_CARD", "MERCHANT_BANK_CARD"):
            return error(400, "PARAM_ERROR", "type must be USER_BANK_CARD or MERCHANT_BANK_CARD")
        if kind == "USER_BANK_CARD":
            if not body.get("bank_type"):
                return error(400, "PARAM_ERROR", "bank_type is required for USER_BANK_CARD")
            for name in ("bank_account", "real_name"):
                if decrypt_sensitive(our, str(body.get(name) or "")) is None:
                    return error(400, "PARAM_ERROR", f"{name} must be encrypted with our key")
        catch_up()
        with ledger.lock:
            refund = ledger.refunds.get(str(body.get("out_refund_no")))
            if refund is None or refund.refund_id != refund_id or refund.mchid != merchant.mchid:
                return error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            if refund.status != "ABNORMAL":
                return error(400, "INVALID_REQUEST", f"退款单状态为{refund.status}, not ABNORMAL")
            refund.channel = "OTHER_BANKCARD" if kind == "USER_BANK_CARD" else "OTHER_BALANCE"
            refund.received_account = "用户银行卡" if kind == "USER_BANK_CARD" else "商户基本账户"
            ledger.finish(refund, "SUCCESS", time.time())
            ledger.queue_notice(refund, faults.plan_notice)
            ledger.save()
            notifier.wake()
            return answer(200, refund.view())

    def transaction(merchant: Merchant, field: str, reference: str, mchid: str) -> Response:
        if mchid != merchant.mchid:
            return error(400, "PARAM_ERROR", "mchid must be the signing merchant's")
        with ledger.lock:
            payment = ledger.payment(merchant.mchid, field, reference)
            return answer(
                200,
                {
                    "appid": bill.APPID,
                    "mchid": mchid,
                    "out_trade_no": payment.out_trade_no,
                    "transaction_id": payment.transaction_id,
                    "trade_type": "JSAPI",
                    "trade_state": "SUCCESS",
                    "trade_state_desc": "支付成功",
                    "bank_type": "OTHERS",
                    "success_time": datetime.fromtimestamp(payment.paid_at, BEIJING).isoformat(
                        timespec="seconds"
                    ),
                    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                    "amount": {
                        "total": payment.total,
                        "payer_total": payment.total,
                        "currency": "CNY",
                        "payer_currency": "CNY",
                    },
                },
            )

    @app.get("/v3/pay/transactions/id/{transaction_id}")
    async def by_transaction_id(transaction_id: str, mchid: str, request: Request) -> Response:
        merchant, _ = await authenticate(request)
        if not _TRANSACTION_ID.match(transaction_id):
            return error(400, "PARAM_ERROR", "transaction_id is not a WeChat Pay order number")
        return transaction(merchant, "transaction_id", transaction_id, mchid)

    @app.get("/v3/pay/transactions/out-trade-no/{out_trade_no}")
    async def by_out_trade_no(out_trade_no: str, mchid: str, request: Request) -> Response:
        merchant, _ = await authenticate(request)
        if not _OUT_TRADE_NO.match(out_trade_no):
            return error(400, "PARAM_ERROR", "out_trade_no must be 6-32 of [0-9A-Za-z_-|*]")
        return transaction(merchant, "out_trade_no", out_trade_no, mchid)

    @app.get("/v3/bill/tradebill")
    async def trade_bill(request: Request, bill_date: str = "", bill_type: str = "ALL") -> Response:
        merchant, _ = await authenticate(request)
        try:
            day = date.fromisoformat(bill_date)
        except ValueError:
            return error(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
        if bill_type != "REFUND":
            return error(400, "PARAM_ERROR", "the sandbox serves bill_type=REFUND only")
        catch_up()
        data = bill.render(ledger, merchant.mchid, day.isoformat())
        if data is None:
            return error(400, "NO_STATEMENT_EXIST", "账单文件不存在: no refunds that day")
        token = secrets.token_urlsafe(16)
        bills[token] = data
        url = f"{str(request.base_url).rstrip('/')}/v3/billdownload/file?token={token}"
        return answer(
            200, {"hash_type": "SHA1", "hash_value": bill.sha1(data), "download_url": url}
        )

    @app.get("/v3/billdownload/file")
    async def download_bill(token: str, request: Request) -> Response:
        await authenticate(request)
        data = bills.get(token)
        if data is None:
            return error(404, "RESOURCE_NOT_EXISTS", "token unknown or expired")
        # As the docs say, the file itself is not signed: its SHA1 came in the signed answer.
        return Response(data, media_type="text/plain; charset=utf-8")

    # --- sandbox administration (not part of WeChat Pay's API) ---

    @app.post("/sandbox/payments")
    def create_payment(body: dict[str, Any]) -> JSONResponse:
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            return JSONResponse({"code": "PARAM_ERROR", "message": "total: fen > 0"}, 400)
        tid, otn = body.get("transaction_id"), body.get("out_trade_no")
        if tid is not None and not (isinstance(tid, str) and _TRANSACTION_ID.match(tid)):
            return JSONResponse({"code": "PARAM_ERROR", "message": "transaction_id"}, 400)
        if otn is not None and not (isinstance(otn, str) and _OUT_TRADE_NO.match(otn)):
            return JSONResponse({"code": "PARAM_ERROR", "message": "out_trade_no"}, 400)
        mchid = str(body.get("mchid") or next(iter(known)))
        payment = ledger.add_payment(mchid, tid, otn, total)
        return JSONResponse(
            {
                "transaction_id": payment.transaction_id,
                "out_trade_no": payment.out_trade_no,
                "total": payment.total,
            }
        )

    @app.get("/sandbox/refunds")
    def list_refunds() -> dict[str, Any]:
        catch_up()
        with ledger.lock:
            return {"refunds": [r.view() | {"mchid": r.mchid} for r in ledger.refunds.values()]}

    @app.get("/sandbox/notifications")
    def list_notifications() -> dict[str, Any]:
        with ledger.lock:
            return {"notifications": [dict(vars(n)) for n in ledger.notifications.values()]}

    @app.get("/sandbox/control")
    def get_control() -> dict[str, Any]:
        return faults.snapshot()

    @app.post("/sandbox/control")
    def set_control(change: ControlRequest) -> dict[str, Any]:
        return faults.apply(change)

    return app


def _refund_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with a refund request, naming the field; None when it is well-formed."""
    if not isinstance(body.get("out_refund_no"), str) or not _OUT_REFUND_NO.match(
        body["out_refund_no"]
    ):
        return "out_refund_no must be 1-64 of [0-9A-Za-z_-|*@]"
    has_id, has_no = "transaction_id" in body, "out_trade_no" in body
    if has_id == has_no:
        return "exactly one of transaction_id and out_trade_no is required"
    if has_id and not (
        isinstance(body["transaction_id"], str) and _TRANSACTION_ID.match(body["transaction_id"])
    ):
        return "transaction_id is not a WeChat Pay order number"
    if has_no and not (
        isinstance(body["out_trade_no"], str) and _OUT_TRADE_NO.match(body["out_trade_no"])
    ):
        return "out_trade_no must be 6-32 of [0-9A-Za-z_-|*]"
    notify = body.get("notify_url")
    if notify is not None and not (isinstance(notify, str) and notify.startswith("http")):
        return "notify_url must be an http(s) URL"
    amount = body.get("amount")
    if not isinstance(amount, dict):
        return "amount is required"
    for name in ("refund", "total"):
        value = amount.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return f"amount.{name} must be a positive integer (fen)"
    if amount.get("currency") != "CNY":
        return "amount.currency must be CNY"
    if amount["refund"] > amount["total"]:
        return "amount.refund must not exceed amount.total"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.wechatpay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep state in DATA_DIR/wechatpay.json (default: memory only)",
    )
    parser.add_argument("--default-payment-total", type=int, default=DEFAULT_PAYMENT_TOTAL)
    args = parser.parse_args(argv)
    app = create_app(args.data_dir, default_payment_total=args.default_payment_total)
    serve_http(app, host=args.host, port=args.port, log_level="info")
