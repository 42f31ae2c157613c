"""Stripe's cursor paging, declared once: `limit`, `starting_after`, `ending_before`.

A list endpoint takes `page: Paging` (or a `cursor_paging(...)` alias of its own
default and wording); an unknown cursor raised by a read model
(`shared.readmodel.UnknownCursor`) becomes a 422 naming the parameter, in
`shared.http`'s handlers — no endpoint catches it.
"""

# No `from __future__ import annotations`: FastAPI reads the parameters at runtime.

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query

from shared.problems import Problem, invalid

MAX_LIMIT = 100
CURSOR_LENGTH = 100


@dataclass(frozen=True)
class Page:
    """One page asked for: at most `limit` items after (or before) a cursor."""

    limit: int
    starting_after: str | None = None
    ending_before: str | None = None

    @property
    def cursor_name(self) -> str:
        return "ending_before" if self.ending_before else "starting_after"


class UnknownCursor(LookupError):
    """`starting_after` / `ending_before` names no item the caller may see (a 422)."""


def bad_query(field: str, code: str, message: str) -> Problem:
    """A 422 problem naming one bad query parameter."""
    return invalid(f"query.{field}", code, message)


def cursor_paging(*, default_limit: int = 20, item: str = "item", backwards: bool = True) -> Any:
    """An `Annotated[Page, Depends(...)]` alias: the limit's default, the item's name in the
    parameters' help, and whether `ending_before` is offered (some lists page forward only)."""
    after_help = f"the id of a {item}: the page of {item}s after it (older)"
    before_help = f"the id of a {item}: the page of {item}s before it (newer)"
    Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="how many, 1 to 100")]
    After = Annotated[str | None, Query(max_length=CURSOR_LENGTH, description=after_help)]
    Before = Annotated[str | None, Query(max_length=CURSOR_LENGTH, description=before_help)]

    if backwards:

        def both_ways(
            limit: Limit = default_limit, starting_after: After = None, ending_before: Before = None
        ) -> Page:
            if starting_after and ending_before:
                raise bad_query(
                    "ending_before", "exclusive", "use starting_after or ending_before, not both"
                )
            return Page(limit, starting_after, ending_before)

        return Annotated[Page, Depends(both_ways)]

    def forward(limit: Limit = default_limit, starting_after: After = None) -> Page:
        return Page(limit, starting_after)

    return Annotated[Page, Depends(forward)]


Paging = cursor_paging()
