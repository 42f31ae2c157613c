"""What every list page shares: the page size asked of a service, the cursor a link carries,
the links to the pages either side, and the page shown when the service refuses or does not
answer (its problem on the page, the list empty)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import Response

from services.console.calls import Refused, Unreachable
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
