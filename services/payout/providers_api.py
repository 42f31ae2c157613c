"""Payout's provider routes: the tenants' merchant accounts (admins configure them, finance
and auditors read what is configured), and each provider's signed callbacks."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.payout.callbacks import CallbackRefused, CallbackReplayed, Delivery
from services.payout.deps import AccountAdmin, PayoutApp, Payouts, Providers, Reader
from services.payout.schemas import ProviderAccountList, ProviderAccountView, ProviderList
from services.payout.tenant_providers import AccountInvalid
from services.payout.views import provider_account_view, provider_list
from shared.keyed import answer
from shared.problems import not_allowed, problem_response, problem_responses
from shared.staff import staff_problem_responses
from shared.vocabulary import TENANT_NAME

TenantName = Annotated[str, Path(pattern=TENANT_NAME.pattern, description="the tenant")]
ProviderName = Annotated[str, Path(max_length=40, description="`stripe`, `alipay` or `wechatpay`")]
STAFF = staff_problem_responses(401, 403)
router = APIRouter(prefix="/v1", tags=["providers"])


@router.get(
    "/admin/providers",
    response_model=ProviderList,
    responses=STAFF,
    summary="The payment providers a tenant can connect, and what each account needs",
)
async def known_providers(staff: Reader, providers: Providers) -> JSONResponse:
    return answer(provider_list(providers.specs.values()))


@router.get(
    "/admin/tenants/{tenant}/providers",
    response_model=ProviderAccountList,
    responses=STAFF,
    summary="A tenant's provider accounts (never a secret: ids and key fingerprints)",
)
async def tenant_accounts(tenant: TenantName, staff: Reader, providers: Providers) -> JSONResponse:
    accounts = await asyncio.to_thread(providers.accounts, tenant)
    views = [provider_account_view(account) for account in accounts]
    return answer(ProviderAccountList(data=views))


@router.put(
    "/admin/tenants/{tenant}/providers/{provider}",
    response_model=ProviderAccountView,
    status_code=201,
    responses=STAFF
    | problem_responses(404, 409)
    | {
        200: {"description": "The account was reconfigured", "model": ProviderAccountView},
        422: problem_response(
            422, "A credential is missing, does not parse, or a key pair does not match"
        ),
    },
    summary="Connect (or rotate) the tenant's account at a provider",
)
async def configure(
    tenant: TenantName,
    provider: ProviderName,
    staff: AccountAdmin,
    providers: Providers,
    credentials: Annotated[dict[str, Any], Body(description="the provider's account fields")],
) -> JSONResponse:
    """The credentials are validated by the provider's account model, sealed in the keystore
    and never shown again; the answer shows what identifies them."""
    providers.spec(provider)  # 404 for an unknown provider, before anything else
    try:
        account, created = await asyncio.to_thread(
            providers.configure, tenant, provider, credentials, actor=staff.sub
        )
    except AccountInvalid as invalid:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors]
        ) from None
    return answer(provider_account_view(account), 201 if created else 200)


@router.delete(
    "/admin/tenants/{tenant}/providers/{provider}",
    response_model=ProviderAccountView,
    responses=STAFF | problem_responses(404, 409),
    summary="Disconnect the tenant's account: its credentials are shredded",
)
async def remove(
    tenant: TenantName,
    provider: ProviderName,
    staff: AccountAdmin,
    providers: Providers,
    app: PayoutApp,
    payouts: Payouts,
) -> JSONResponse:
    """Refused (409) while a refund sent to the account is not settled: without the account
    payout could no longer ask about it, and finance could not take it further safely."""
    methods = providers.spec(provider).methods
    open_ids = await asyncio.to_thread(payouts.open_ids, tenant, methods)
    sent = await asyncio.to_thread(app.sent_to, provider, open_ids)
    if sent:
        raise not_allowed(
            "account-in-use",
            f"{len(sent)} payout(s) sent to this account are not settled yet "
            f"({', '.join(sent[:5])}); disconnect it once they are.",
        )
    account = await asyncio.to_thread(providers.remove, tenant, provider, actor=staff.sub)
    return answer(provider_account_view(account))


@router.post(
    "/providers/{provider}/{tenant}/callbacks",
    responses=problem_responses(400, 401, 404),
    summary="A provider's signed notification about a refund of the tenant's account",
)
async def callback(
    provider: ProviderName,
    tenant: TenantName,
    request: Request,
    app: PayoutApp,
    providers: Providers,
) -> Response:
    """Verified with the tenant's account (signature, freshness, decryption) over the exact
    bytes; a refusal is recorded and changes nothing. A repeat is answered as the provider
    expects (or it would retry for days) and changes nothing twice."""
    spec = providers.spec(provider)
    body = await request.body()
    headers = dict(request.headers)
    at = datetime.now(UTC)
    source = f"{provider}/{tenant}"
    try:
        callbacks = await asyncio.to_thread(providers.callbacks_or_refused, tenant, provider)
        note = callbacks.verify(headers, body, time.time())
    except CallbackRefused as refused:
        delivery = Delivery(body=body, signature=_signature(headers), callback_id=None, at=at)
        await asyncio.to_thread(app.refuse_callback, refused.reason, delivery, source)
        providers.callbacks_seen.labels(provider, refused.reason).inc()
        raise
    try:
        outcome: str = await asyncio.to_thread(
            app.receive_notification, note, at, provider=provider, tenant=tenant
        )
    except CallbackReplayed:  # taken before: the same answer, nothing changes
        outcome = "replayed"
    providers.callbacks_seen.labels(provider, outcome).inc()
    answered = spec.answer
    return Response(answered.body, answered.status_code, media_type=answered.media_type)


def _signature(headers: dict[str, str]) -> str | None:
    """The delivery's signature header, whichever provider's it is, for the audit trail."""
    for name in ("stripe-signature", "wechatpay-signature"):
        if name in headers:
            return headers[name][:2000]
    return None
