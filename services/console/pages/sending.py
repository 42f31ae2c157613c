"""Sending a staff form to a service as the person, the one way every page does it: the form's
own Idempotency-Key rides along (a double submit replays the first answer), and whatever the
console or the service refuses comes back as the status and problem to show, so the page is
shown again unchanged, saying why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from services.console.calls import Refused, Services, Unreachable
from services.console.i18n import Gettext
from services.console.pages.case_forms import FormProblem
from services.console.pages.explain import explained, local_problem
from services.console.vocabulary import IDEMPOTENCY_FIELD

# What a page shows when the form was not taken: the status and the problem naming the fields.
Refusal = tuple[int, dict[str, Any]]


async def form_of(request: Request) -> dict[str, str]:
    """The posted form's text fields (files are read by the page that expects them)."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


async def sent(
    calls: Services,
    service: str,
    path: str,
    form: dict[str, str],
    body_of: Callable[[], Any],
    gettext: Gettext,
) -> Refusal | None:
    """None when the service took the form; else why not: 422 naming the fields the console
    can tell are wrong (nothing sent), the service's refusal, or 502 when it did not answer."""
    try:
        body = body_of()
    except FormProblem as problem:
        return 422, local_problem(problem.fields, gettext)
    try:
        await calls.post(service, path, body, key=form.get(IDEMPOTENCY_FIELD) or None)
    except (Refused, Unreachable) as error:
        return (error.status if isinstance(error, Refused) else 502), explained(error, gettext)
    return None
