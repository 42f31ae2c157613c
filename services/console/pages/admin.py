"""The admin's pages: policy versions (read, compare, publish a new one), platform API keys
(list, issue — the key shown once — and revoke), a tenant's webhook endpoints (status,
failures, disabled ones) and a tenant's payment provider accounts (read only: what identifies
the credentials, never a secret)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

import asyncio
import difflib
import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.calls import Refused, Services, Unreachable
from services.console.deps import Calls, Pages, SignedIn
from services.console.pages.explain import explained, local_problem
from services.console.pages.gate import refused
from services.console.pages.listing import refused_page
from services.console.pages.sending import form_of
from services.console.vocabulary import IDEMPOTENCY_FIELD

router = APIRouter()
GROUP = "/admin"
Version = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
MAX_DOCUMENT_CHARS = 200_000


def as_yaml(document: Any) -> str:
    """The canonical text of a policy document: YAML with sorted keys, so diffs are stable."""
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)


def diff_rows(old: str, new: str) -> list[dict[str, Any]]:
    """A side-by-side diff as table rows: kind (same/removed/added/changed), line numbers and
    texts."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue  # only what differs, each with its line numbers
        for k in range(max(i2 - i1, j2 - j1)):
            left = a[i1 + k] if i1 + k < i2 else None
            right = b[j1 + k] if j1 + k < j2 else None
            rows.append(
                {
                    "old_line": i1 + k + 1 if left is not None else None,
                    "old": left,
                    "new_line": j1 + k + 1 if right is not None else None,
                    "new": right,
                }
            )
    return rows


async def _failed(request: Request, pages: Pages, error: Refused | Unreachable) -> Response:
    return refused_page(request, pages, "problem.html", error)


async def _overview(calls: Services, tenant: str, provider_tenant: str = "") -> dict[str, Any]:
    """Policy versions, keys and (for the tenants chosen) webhook endpoints and provider
    accounts, each or the refusal that kept it from the page."""

    async def one(service: str, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await calls.get(service, path, params)
        except (Refused, Unreachable) as error:
            return error

    async def webhooks() -> Any:
        if not tenant:
            return None
        return await one("notify", "/v1/admin/webhook_endpoints", {"tenant": tenant})

    async def accounts() -> Any:
        if not provider_tenant:
            return None
        return await one("payout", f"/v1/admin/tenants/{provider_tenant}/providers")

    policies, keys, endpoints, connected = await asyncio.gather(
        one("review", "/v1/policies"), one("intake", "/v1/admin/api-keys"), webhooks(), accounts()
    )
    return {"policies": policies, "keys": keys, "webhooks": endpoints, "accounts": connected}


TenantQuery = Annotated[str, Query(max_length=63, pattern=r"^[a-z0-9_-]*$")]


def known_tenants(keys: Any, *chosen: str) -> list[str]:
    """The platforms intake has issued keys to (revoked ones too: their endpoints and accounts
    may still be there), and the chosen ones, sorted: the tenant forms' choices. Tenants of
    keys from the environment are not listed by intake, so the forms also take a typed name."""
    listed = keys.get("data", []) if isinstance(keys, dict) else []
    return sorted({str(key["tenant"]) for key in listed} | {name for name in chosen if name})


@router.get("/admin")
async def admin(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    tenant: TenantQuery = "",
    typed: TenantQuery = "",
    provider_tenant: TenantQuery = "",
    provider_typed: TenantQuery = "",
) -> Response:
    """`typed` (a platform name typed in the webhooks form) wins over `tenant` (chosen from
    the platforms intake knows); likewise `provider_typed` over `provider_tenant` for the
    provider accounts. Each form carries the other's choice, so both sections stay shown."""
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    return await _admin_page(
        request,
        calls,
        pages,
        tenant=typed or tenant,
        provider_tenant=provider_typed or provider_tenant,
    )


async def _admin_page(
    request: Request,
    calls: Services,
    pages: Pages,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    issued: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    tenant: str = "",
    provider_tenant: str = "",
) -> Response:
    found = await _overview(calls, tenant, provider_tenant)
    _ = pages.gettext(request)
    shown = {
        name: None if isinstance(value, (Refused, Unreachable)) else value
        for name, value in found.items()
    }
    failures = [
        explained(value, _) for value in found.values() if isinstance(value, (Refused, Unreachable))
    ]
    return pages.page(
        request,
        "admin/index.html",
        status,
        policies=shown["policies"],
        keys=shown["keys"],
        webhooks=shown["webhooks"],
        accounts=shown["accounts"],
        tenant=tenant,
        provider_tenant=provider_tenant,
        tenants=known_tenants(shown["keys"], tenant, provider_tenant),
        failures=failures,
        problem=problem,
        issued=issued,
        form=form or {},
    )


@router.get("/admin/policies/diff")
async def diff(
    request: Request,
    person: SignedIn,
    calls: Calls,
    pages: Pages,
    old: Annotated[str, Query(min_length=1, max_length=100)],
    new: Annotated[str, Query(min_length=1, max_length=100)],
) -> Response:
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    try:
        before, after = await asyncio.gather(
            calls.get("review", f"/v1/policies/{old}"), calls.get("review", f"/v1/policies/{new}")
        )
    except (Refused, Unreachable) as error:
        return await _failed(request, pages, error)
    rows = diff_rows(as_yaml(before), as_yaml(after))
    return pages.page(request, "admin/diff.html", old=old, new=new, rows=rows)


@router.get("/admin/policies/new")
async def new_policy(request: Request, person: SignedIn, calls: Calls, pages: Pages) -> Response:
    """The form starts from the document in force: change its version and rules."""
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    try:
        current = await calls.get("review", "/v1/policies/current")
    except (Refused, Unreachable) as error:
        return await _failed(request, pages, error)
    return pages.page(request, "admin/publish.html", text=as_yaml(current), problem=None)


@router.post("/admin/policies")
async def publish(request: Request, person: SignedIn, calls: Calls, pages: Pages) -> Response:
    """Sends the YAML to review as JSON; a field review refuses is named on the page and the
    text kept for fixing. The form's Idempotency-Key makes a double submit publish once."""
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    _ = pages.gettext(request)
    form = await form_of(request)
    text = form.get("document", "")[:MAX_DOCUMENT_CHARS]
    try:
        # YAML reads `version: 2026-12-01` as a date: sent as the text it was written as.
        document = json.loads(json.dumps(yaml.safe_load(text), default=str))
        if not isinstance(document, dict):
            raise ValueError
    except (yaml.YAMLError, ValueError):
        shown = local_problem({"document": _("Enter the policy as a YAML mapping.")}, _)
        return pages.page(request, "admin/publish.html", 422, text=text, problem=shown)
    try:
        published = await calls.post(
            "review", "/v1/policies", document, key=form.get(IDEMPOTENCY_FIELD) or None
        )
    except (Refused, Unreachable) as error:
        status = error.status if isinstance(error, Refused) else 502
        shown = explained(error, _)
        return pages.page(request, "admin/publish.html", status, text=text, problem=shown)
    return RedirectResponse(f"/admin/policies/{published['version']}", status_code=303)


@router.get("/admin/policies/{version}")
async def policy(
    request: Request, version: Version, person: SignedIn, calls: Calls, pages: Pages
) -> Response:
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    try:
        document, versions = await asyncio.gather(
            calls.get("review", f"/v1/policies/{version}"), calls.get("review", "/v1/policies")
        )
    except (Refused, Unreachable) as error:
        return await _failed(request, pages, error)
    return pages.page(
        request,
        "admin/policy.html",
        version=version,
        text=as_yaml(document),
        versions=[v["version"] for v in versions["data"]],
    )


@router.post("/admin/keys")
async def issue_key(request: Request, person: SignedIn, calls: Calls, pages: Pages) -> Response:
    """The key is in this page only (never in the session, never again): copy it now."""
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    form = await form_of(request)
    body = {"tenant": form.get("tenant", "").strip(), "label": form.get("label", "").strip()}
    try:
        issued = await calls.post(
            "intake", "/v1/admin/api-keys", body, key=form.get(IDEMPOTENCY_FIELD) or None
        )
    except (Refused, Unreachable) as error:
        status = error.status if isinstance(error, Refused) else 502
        shown = explained(error, pages.gettext(request))
        return await _admin_page(request, calls, pages, status, shown, form=form)
    answer = await _admin_page(request, calls, pages, 201, issued=issued)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.post("/admin/keys/{prefix}/revoke")
async def revoke_key(
    request: Request,
    prefix: Annotated[str, Path(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    person: SignedIn,
    calls: Calls,
    pages: Pages,
) -> Response:
    if (no := refused(person, GROUP, request, pages)) is not None:
        return no
    form = await form_of(request)
    body = {"reason": form.get("reason", "").strip()}
    try:
        await calls.post(
            "intake",
            f"/v1/admin/api-keys/{prefix}/revoke",
            body,
            key=form.get(IDEMPOTENCY_FIELD) or None,
        )
    except (Refused, Unreachable) as error:
        status = error.status if isinstance(error, Refused) else 502
        shown = explained(error, pages.gettext(request))
        return await _admin_page(request, calls, pages, status, shown)
    return RedirectResponse("/admin", status_code=303)
