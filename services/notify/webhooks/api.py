"""Platform webhooks over HTTP: a tenant's endpoints, their secrets, and their delivery logs."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from datetime import timedelta
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.notify.application import NotifyApplication
from services.notify.deps import (
    Command,
    DeliveryId,
    DeliveryPaging,
    EndpointId,
    EndpointPaging,
    Notify,
    Tenant,
    WebhookLists,
)
from services.notify.webhooks.commands import endpoint_public_id
from services.notify.webhooks.deliveries import DeliveryState
from services.notify.webhooks.endpoints import WebhookEndpoint
from services.notify.webhooks.schemas import (
    CATALOG,
    DeliveryList,
    DeliveryView,
    EndpointCreate,
    EndpointDeleted,
    EndpointList,
    EndpointUpdate,
    EndpointView,
    EndpointWithSecret,
    EventTypeList,
    RotateSecret,
    delivery_view,
    endpoint_view,
    with_secret,
)
from shared.keyed import answer
from shared.problems import invalid, problem_responses

# Every route takes the platform's API key (401 without a valid one).
router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problem_responses(401))
# The routes about one endpoint (included in `router` below): 404 for no such endpoint (or
# delivery) of the tenant's; a command may also find its state refuses it.
one_endpoint = APIRouter(
    prefix="/webhook_endpoints/{endpoint_id}", responses=problem_responses(404)
)
CHANGES = problem_responses(400, 409, 413, 422)


@router.get(
    "/webhook_event_types",
    response_model=EventTypeList,
    summary="Every event type an endpoint can subscribe to",
)
async def list_event_types(tenant: Tenant) -> JSONResponse:
    """Each CloudEvent type with its publisher, what it means and the JSON Schema of its
    `data` (the AsyncAPI document, docs/asyncapi.json, describes the same)."""
    return answer(CATALOG)


@router.post(
    "/webhook_endpoints",
    status_code=201,
    response_model=EndpointWithSecret,
    summary="Register a webhook endpoint",
    responses=problem_responses(409),
)
async def create_endpoint(body: EndpointCreate, call: Command, notify: Notify) -> JSONResponse:
    """Events of the listed types are POSTed to `url`, signed per Standard Webhooks with the
    `secret` in the answer (shown only here and on rotation). The URL must be https and
    resolve only to public addresses (422 names the reason otherwise)."""
    register = partial(notify.webhooks.register_endpoint, **body.model_dump())
    registered = await asyncio.to_thread(register, **call.by(body))
    return await _with_secret(notify, *registered, status=201)


@router.get(
    "/webhook_endpoints",
    response_model=EndpointList,
    summary="List webhook endpoints, newest first",
)
async def list_endpoints(
    tenant: Tenant, request: Request, page: EndpointPaging, notify: Notify, index: WebhookLists
) -> JSONResponse:
    def listed() -> EndpointList:
        found = index.endpoints.page(tenant, limit=page.limit, starting_after=page.starting_after)
        shown = [endpoint_view(notify.webhooks.endpoint(uid)) for uid in found.ids]
        return EndpointList.of(request, shown, found.has_more)

    return answer(await asyncio.to_thread(listed))


@one_endpoint.get("", response_model=EndpointView, summary="Get a webhook endpoint")
async def get_endpoint(endpoint_id: EndpointId, tenant: Tenant, notify: Notify) -> JSONResponse:
    endpoint = await asyncio.to_thread(notify.webhooks.endpoint_for, tenant, endpoint_id)
    return answer(endpoint_view(endpoint))


@one_endpoint.post(
    "",
    response_model=EndpointView,
    summary="Update a webhook endpoint, or re-enable it",
    responses=CHANGES,
)
async def update_endpoint(
    endpoint_id: EndpointId, body: EndpointUpdate, call: Command, notify: Notify
) -> JSONResponse:
    """Only the fields sent change. `enabled: true` re-enables an endpoint disabled after a
    410 or after failing too long; deliveries failed meanwhile can be redelivered."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    nulls = [n for n in ("url", "event_types", "description", "enabled") if n in changes]
    for name in nulls:
        if changes[name] is None:
            raise invalid(name, "null", f"{name} cannot be null")
    endpoint, replayed = await asyncio.to_thread(
        notify.webhooks.update_endpoint, endpoint_id=endpoint_id, changes=changes, **call.by(body)
    )
    return answer(endpoint_view(endpoint), 200, replayed)


@one_endpoint.delete("", response_model=EndpointDeleted, summary="Delete a webhook endpoint")
async def delete_endpoint(endpoint_id: EndpointId, tenant: Tenant, notify: Notify) -> JSONResponse:
    """Nothing more is sent to it; pending deliveries fail when they come due."""
    endpoint = await asyncio.to_thread(
        notify.webhooks.delete_endpoint,
        tenant=tenant,
        endpoint_id=endpoint_id,
        actor=f"tenant:{tenant}",
    )
    return answer(EndpointDeleted(id=endpoint_public_id(endpoint.id)))


@one_endpoint.post(
    "/rotate_secret",
    response_model=EndpointWithSecret,
    summary="Rotate the signing secret",
    responses=CHANGES,
)
async def rotate_secret(
    endpoint_id: EndpointId, call: Command, notify: Notify, body: RotateSecret | None = None
) -> JSONResponse:
    """A new secret signs from now on; the previous one signs too (a second `v1,`
    signature) for `expire_previous_after_seconds`, so receivers can switch over."""
    body = body or RotateSecret.model_validate({})
    expire_previous_after = timedelta(seconds=body.expire_previous_after_seconds)
    rotated = await asyncio.to_thread(
        notify.webhooks.rotate_secret,
        endpoint_id=endpoint_id,
        expire_previous_after=expire_previous_after,
        **call.by(body),
    )
    return await _with_secret(notify, *rotated, status=200)


@one_endpoint.get(
    "/deliveries", response_model=DeliveryList, summary="The endpoint's delivery log, newest first"
)
async def list_deliveries(
    endpoint_id: EndpointId,
    tenant: Tenant,
    request: Request,
    page: DeliveryPaging,
    notify: Notify,
    index: WebhookLists,
    state: DeliveryState | None = None,
) -> JSONResponse:
    """Every delivery with its attempts: when, the status code, latency and an excerpt of
    the answer."""

    def listed() -> DeliveryList:
        endpoint = notify.webhooks.endpoint_for(tenant, endpoint_id)
        after, limit = page.starting_after, page.limit
        found = index.deliveries.page(
            tenant, endpoint.id, limit=limit, state=state, starting_after=after
        )
        shown = [delivery_view(notify.webhooks.delivery(uid)) for uid in found.ids]
        return DeliveryList.of(request, shown, found.has_more)

    return answer(await asyncio.to_thread(listed))


@one_endpoint.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryView,
    summary="One delivery with its attempts",
)
async def get_delivery(
    endpoint_id: EndpointId, delivery_id: DeliveryId, tenant: Tenant, notify: Notify
) -> JSONResponse:
    delivery = await asyncio.to_thread(
        notify.webhooks.delivery_for, tenant, endpoint_id, delivery_id
    )
    return answer(delivery_view(delivery))


@one_endpoint.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryView,
    status_code=202,
    summary="Send a delivery again",
    responses=CHANGES,
)
async def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, call: Command, notify: Notify
) -> JSONResponse:
    """Queues the delivery again, with the same `webhook-id` and a fresh round of retries —
    also for an `uncertain` one. 409 while its endpoint is disabled."""
    delivery, replayed = await asyncio.to_thread(
        notify.webhooks.redeliver, endpoint_id=endpoint_id, delivery_id=delivery_id, **call.by()
    )
    return answer(delivery_view(delivery), 202, replayed)


@one_endpoint.post(
    "/test",
    status_code=202,
    response_model=DeliveryView,
    summary="Send a test event",
    responses=CHANGES,
)
async def send_test(endpoint_id: EndpointId, call: Command, notify: Notify) -> JSONResponse:
    """Queues a `webhook.test.v1` CloudEvent to this endpoint alone, whatever it
    subscribes to, signed and retried like any delivery and kept in its log; to check a
    receiver and its signature verification. 409 while the endpoint is disabled."""
    delivery, replayed = await asyncio.to_thread(
        notify.webhooks.send_test, tenant=call.tenant, endpoint_id=endpoint_id, keyed=call.keyed()
    )
    return answer(delivery_view(delivery), 202, replayed)


router.include_router(one_endpoint)


async def _with_secret(
    notify: NotifyApplication, endpoint: WebhookEndpoint, replayed: bool, *, status: int
) -> JSONResponse:
    """The endpoint with its current secret opened: answered on creation and rotation only."""
    secret = await asyncio.to_thread(notify.webhooks.secrets.current, endpoint)
    return answer(with_secret(endpoint, secret), status, replayed)
