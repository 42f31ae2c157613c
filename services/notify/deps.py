"""What notify's routes depend on, declared once: the application and its read models, the
tenant behind a platform API key, staff holding a role, and the lists' paging.

`bootstrap.py` puts the objects on `http.state`; routes take these aliases as parameters.
"""

# No `from __future__ import annotations`: FastAPI resolves these aliases at runtime.

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import Depends, Path

from services.notify.application import NotifyApplication
from services.notify.messages.feed import CustomerFeed
from services.notify.webhooks.commands import DELIVERY_PREFIX, ENDPOINT_PREFIX
from services.notify.webhooks.index import WebhookIndex
from services.notify.webhooks.schemas import DELIVERY_EXAMPLE, ENDPOINT_EXAMPLE
from shared.auth import Tenant as Tenant
from shared.http import on_state
from shared.ids import parse_public_id
from shared.keyed import PlatformCommand
from shared.paging import Page, bad_query, cursor_paging
from shared.staff import staff_with

Notify = Annotated[NotifyApplication, on_state("notify")]
FeedRows = Annotated[CustomerFeed, on_state("feed")]
WebhookLists = Annotated[WebhookIndex, on_state("webhook_index")]

# A platform's command: its tenant (by API key) and its Idempotency-Key.
Command = PlatformCommand
# Who may read a refund's message log, and who may send a message again.
Reader = staff_with("auditor", "admin")
Admin = staff_with("admin")

EndpointId = Annotated[
    str, Path(description="the endpoint's id", examples=[ENDPOINT_EXAMPLE], max_length=64)
]
DeliveryId = Annotated[
    str, Path(description="the delivery's id", examples=[DELIVERY_EXAMPLE], max_length=64)
]


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
