"""What every list page shares: the page size asked of a service, the cursor a link carries,
the links to the pages either side, and the page shown when the service refuses or does not
answer (its problem on the page, the list empty)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import Response

from services.console.calls import Refused, Services, Unreachable
from services.console.deps import Pages
from services.console.pages.explain import explained

PAGE_SIZE = 20
Cursor = Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


def paging_links(
    path: str,
    found: dict[str, Any],
    kept: dict[str, str],
    starting_after: str | None,
    ending_before: str | None,
    key: str = "id",
) -> dict[str, str]:
    """Next: after this page's last item, when there is more; previous: before its first,
    when the person paged away from the first page. The filters in `kept` that have a value
    ride along, so paging keeps them."""
    data = found["data"]
    kept = {name: value for name, value in kept.items() if value}
    links: dict[str, str] = {}
    if not data:
        return links
    if found["has_more"] or ending_before:
        links["next"] = f"{path}?" + urlencode({**kept, "starting_after": data[-1][key]})
    if starting_after or (ending_before and found["has_more"]):
        links["previous"] = f"{path}?" + urlencode({**kept, "ending_before": data[0][key]})
    return links


def refused_page(
    request: Request, pages: Pages, template: str, error: Refused | Unreachable, **context: Any
) -> Response:
    """The page with the service's refusal (its status) or silence (502) explained on it."""
    status = error.status if isinstance(error, Refused) else 502
    shown = explained(error, pages.gettext(request))
    return pages.page(request, template, status, problem=shown, **context)


@dataclass(frozen=True)
class Listing:
    """One list page: the service and API path it lists, the console path it is shown at,
    its template, and the field of an item its cursors name."""

    service: str
    api: str
    here: str
    template: str
    key: str = "id"


Entry = dict[str, Any]


async def list_page(
    request: Request,
    calls: Services,
    pages: Pages,
    listing: Listing,
    query: dict[str, Any],
    kept: dict[str, str],
    cursors: tuple[str | None, str | None],
    *,
    status: int = 200,
    problem: dict[str, Any] | None = None,
    each: Callable[[Entry], Entry] | None = None,
    **context: Any,
) -> Response:
    """One page of the list (`query` with the page size; `cursors` are starting_after and
    ending_before), each item made ready to show by `each`, with the links either side
    keeping the filters in `kept`; a refusal or silence shows the empty list explained."""
    starting_after, ending_before = cursors
    asked = {**query, "starting_after": starting_after, "ending_before": ending_before}
    try:
        found = await calls.get(listing.service, listing.api, asked)
    except (Refused, Unreachable) as error:
        return refused_page(
            request, pages, listing.template, error, entries=[], paging={}, **context
        )
    entries = [each(entry) for entry in found["data"]] if each else found["data"]
    paging = paging_links(listing.here, found, kept, starting_after, ending_before, key=listing.key)
    return pages.page(
        request,
        listing.template,
        status,
        problem=problem,
        entries=entries,
        paging=paging,
        **context,
    )
