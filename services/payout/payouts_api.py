"""Payout's staff API for payouts: the list, one payout with its trail, and finance's actions
on a failed payout (retry, store balance, manual payment, WeChat Pay's abnormal refund), each
recording the person acting.

Every finance POST takes an optional Idempotency-Key as review's do: the same key and body
replay the first answer with `Idempotent-Replayed: true`; the same key with another body or
endpoint is a 409; keys belong to the staff person (`sub`).
"""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.payout.abnormal import BankCard, reroute
from services.payout.application import PayoutApplication
from services.payout.deps import (
    Acting,
    PayoutApp,
    PayoutId,
    PayoutPaging,
    Payouts,
    Providers,
    Reader,
)
from services.payout.domain import Payout, PayoutStatus
from services.payout.index import PayoutQuery
from services.payout.schemas import (
    AbnormalRefundRequest,
    ManualPaymentRequest,
    PayoutList,
    PayoutView,
    SwitchToStoreBalanceRequest,
)
from services.payout.views import payout_entry, payout_view
from shared.contracts import PaymentMethod
from shared.keyed import answer
from shared.paging import bad_query
from shared.problems import problem_response, problem_responses
from shared.staff import staff_problem_responses

# Every route is staff's (401 without a valid token, 403 without the role).
router = APIRouter(prefix="/v1", responses=staff_problem_responses(401, 403))

ACTION_PROBLEMS = problem_responses(404) | {
    409: problem_response(
        409,
        "The payout's state does not allow this (`payout-action-refused`: only a failed"
        " payout can be taken further), or the Idempotency-Key was used for another"
        " request (`idempotency-conflict`).",
    ),
}
CreatedAfter = Annotated[datetime | None, Query(description="created strictly after (ISO 8601)")]
CreatedBefore = Annotated[datetime | None, Query(description="created strictly before (ISO 8601)")]


def finance_action(action: str, summary: str) -> Any:
    """The decorator of one finance action on a failed payout: answers the payout after it."""
    return router.post(
        f"/payouts/{{payout_id}}/{action}",
        tags=["finance"],
        response_model=PayoutView,
        summary=summary,
        responses=ACTION_PROBLEMS,
    )


async def shown(app: PayoutApplication, payout: Payout, replayed: bool = False) -> JSONResponse:
    """The payout as staff read it, with its trail up to the version answered."""
    history = await asyncio.to_thread(app.history, payout.id)
    return answer(payout_view(payout, history), 200, replayed)


@router.get(
    "/payouts", tags=["payouts"], response_model=PayoutList, summary="Payouts, newest first"
)
async def list_payouts(
    staff: Reader,
    app: PayoutApp,
    index: Payouts,
    request: Request,
    page: PayoutPaging,
    refund_id: Annotated[str | None, Query(max_length=100)] = None,
    status: PayoutStatus | None = None,
    method: PaymentMethod | None = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> JSONResponse:
    """Cursor pagination as in Stripe: `starting_after` the last id of a page gives the
    next (older) page; `ending_before` the first id gives the previous one."""
    for name, moment in (("created_after", created_after), ("created_before", created_before)):
        if moment is not None and moment.tzinfo is None:
            raise bad_query(name, "timezone", "give a time zone, e.g. Z")
    query = PayoutQuery(refund_id, status, method, created_after, created_before)
    listed = await asyncio.to_thread(index.page, query, page)
    payouts = await asyncio.to_thread(app.payouts_named, listed.ids)
    return answer(PayoutList.of(request, [payout_entry(p) for p in payouts], listed.has_more))


@router.get(
    "/payouts/{payout_id}",
    tags=["payouts"],
    response_model=PayoutView,
    summary="One payout: attempts, dispatches, outcome and who did what",
    responses=problem_responses(404),
)
async def get_payout(payout_id: PayoutId, staff: Reader, app: PayoutApp) -> JSONResponse:
    return await shown(app, await asyncio.to_thread(app.payout_named, payout_id))


@finance_action("retry", "Retry a failed payout (a new attempt series)")
async def retry(payout_id: PayoutId, finance: Acting, app: PayoutApp) -> JSONResponse:
    """The executor sends it again under the same merchant refund number; only when
    the provider closed that number does the new series get a new one."""
    payout, replayed = await asyncio.to_thread(
        app.retry_payout, payout_id, actor=finance.sub, keyed=finance.keyed()
    )
    return await shown(app, payout, replayed)


@finance_action(
    "switch-to-store-balance",
    "Pay a failed payout into the customer's store balance, with their consent",
)
async def switch_to_store_balance(
    payout_id: PayoutId, body: SwitchToStoreBalanceRequest, finance: Acting, app: PayoutApp
) -> JSONResponse:
    payout, replayed = await asyncio.to_thread(
        app.switch_to_store_balance,
        payout_id,
        actor=finance.sub,
        consent_reference=body.consent_reference,
        keyed=finance.keyed(body),
    )
    return await shown(app, payout, replayed)


@finance_action("manual-payment", "Record that finance paid a failed payout by hand")
async def manual_payment(
    payout_id: PayoutId, body: ManualPaymentRequest, finance: Acting, app: PayoutApp
) -> JSONResponse:
    """The payout becomes `paid` (`outcome.via`: manual) under the given reference."""
    actor, key = finance.sub, finance.keyed(body)
    payout, replayed = await asyncio.to_thread(
        app.record_manual_payment, payout_id, actor=actor, reference=body.reference, keyed=key
    )
    return await shown(app, payout, replayed)


@finance_action(
    "abnormal-refund",
    "Have WeChat Pay credit a refund it could not credit (ABNORMAL) to a bank card",
)
async def abnormal_refund(
    payout_id: PayoutId,
    body: AbnormalRefundRequest,
    finance: Acting,
    app: PayoutApp,
    providers: Providers,
) -> JSONResponse:
    """Only for a payout whose last request went to the tenant's WeChat Pay account and
    ended ABNORMAL (`abnormal_refund_allowed`). The request is recorded (type, bank type,
    the card's last four digits, who asked) before it is sent; the payout is `processing`
    until WeChat Pay's answer, callback or a status query settles it, paid once. A refusal
    by WeChat Pay leaves it `failed` again, with WeChat Pay's reason as the cause."""
    payout, replayed = await asyncio.to_thread(
        app.request_abnormal_refund,
        payout_id,
        actor=finance.sub,
        target=body.type,
        bank_type=body.bank_type,
        masked_account=body.masked_account(),
        keyed=finance.keyed(body.fingerprint()),
    )
    if replayed:
        # The first answer came after WeChat Pay's (the version recorded under the key is the
        # request's): a replay answers the payout as it is now, and asks WeChat Pay nothing.
        payout = await asyncio.to_thread(app.payout, payout.id)
    else:
        card = None
        if body.bank_type and body.bank_account and body.real_name:
            account, name = body.bank_account.get_secret_value(), body.real_name.get_secret_value()
            card = BankCard(body.bank_type, account, name.strip())
        payout = await reroute(app, providers, payout.id, body.type, card)
    return await shown(app, payout, replayed)
