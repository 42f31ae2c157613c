"""What notify's routes depend on, declared once: the application and its read models, the
tenant behind a platform API key, staff holding a role, and the lists' paging.

`bootstrap.py` puts the objects on `http.state`; routes take these aliases as parameters.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import Depends, Header, Request
from pydantic import BaseModel

from services.notify.application import NotifyApplication
from services.notify.messages.feed import CustomerFeed
from services.notify.webhooks.commands import DELIVERY_PREFIX, ENDPOINT_PREFIX
from services.notify.webhooks.index import WebhookIndex
from shared.auth import ApiKeys
from shared.idempotency import KeyedRequest
from shared.ids import parse_public_id
from shared.keyed import IdempotencyKey, keyed
from shared.paging import Page, bad_query, cursor_paging
from shared.staff import Credentials, Staff, StaffAuth

# Who may read a refund's message log, and who may send a message again.
READERS = ("auditor", "admin")
RESENDERS = ("admin",)


def _notify(request: Request) -> NotifyApplication:
    notify: NotifyApplication = request.app.state.notify
    return notify


def _feed(request: Request) -> CustomerFeed:
    feed: CustomerFeed = request.app.state.feed
    return feed


def _webhook_index(request: Request) -> WebhookIndex:
    index: WebhookIndex = request.app.state.webhook_index
    return index


def _tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    keys: ApiKeys = request.app.state.api_keys
    return keys.tenant_for(authorization)


Notify = Annotated[NotifyApplication, Depends(_notify)]
FeedRows = Annotated[CustomerFeed, Depends(_feed)]
WebhookLists = Annotated[WebhookIndex, Depends(_webhook_index)]
Tenant = Annotated[str, Depends(_tenant)]


@dataclass(frozen=True)
class PlatformCall:
    """A platform's command: its tenant, and the request under its Idempotency-Key, if any."""

    tenant: str
    request: Request
    idempotency_key: str | None

    @property
    def actor(self) -> str:
        return f"tenant:{self.tenant}"

    def keyed(self, body: BaseModel | None = None) -> KeyedRequest | None:
        return keyed(self.tenant, self.idempotency_key, self.request, body)


def _platform_call(
    tenant: Tenant, request: Request, idempotency_key: IdempotencyKey = None
) -> PlatformCall:
    return PlatformCall(tenant, request, idempotency_key)


Command = Annotated[PlatformCall, Depends(_platform_call)]


def _staff(*roles: str) -> Any:
    """An alias answering the staff member behind the bearer token, if they hold one of
    `roles` (401 without a valid token, 403 without the role)."""

    def staff_member(request: Request, credentials: Credentials) -> Staff:
        auth: StaffAuth = request.app.state.staff_auth
        return auth.dependency(*roles)(credentials)

    return Annotated[Staff, Depends(staff_member)]


Reader = _staff(*READERS)
Admin = _staff(*RESENDERS)


@dataclass(frozen=True)
class IdPage:
    """A page of a list whose cursor is one of our public ids, parsed."""

    limit: int
    starting_after: uuid.UUID | None


def _id_paging(prefix: str, item: str) -> Any:
    """Ten to a page, forward only, after an id `<prefix>_<32 hex>`; a cursor of another shape
    is a 422 naming it (one of the right shape but unknown is the read model's to refuse)."""
    # The alias is Annotated[Page, Depends(...)]: its dependency, as a parameter default.
    paging = get_args(cursor_paging(default_limit=10, item=item, backwards=False))[1]

    def parsed(page: Page = paging) -> IdPage:
        if page.starting_after is None:
            return IdPage(page.limit, None)
        after = parse_public_id(prefix, page.starting_after)
        if after is None:
            raise bad_query("starting_after", "unknown_cursor", f"expected {prefix}_<32 hex>")
        return IdPage(page.limit, after)

    return Annotated[IdPage, Depends(parsed)]


# The customer feed: twenty to a page, either way, after or before a message's id.
FeedPaging = cursor_paging(default_limit=20, item="message")
EndpointPaging = _id_paging(ENDPOINT_PREFIX, "webhook endpoint")
DeliveryPaging = _id_paging(DELIVERY_PREFIX, "delivery record")
