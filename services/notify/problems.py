"""Which problem document each of notify's refusals becomes; installed once, by bootstrap."""

from __future__ import annotations

from services.notify.messages.application import NotificationNotFound, NotResendable
from services.notify.messages.feed import UnknownMessage
from services.notify.webhooks.commands import DeliveryNotFound, EndpointNotFound, InvalidEndpoint
from services.notify.webhooks.endpoints import EndpointRefused
from shared.idempotency import IdempotencyMismatch
from shared.keyed import idempotency_conflict
from shared.paging import bad_query
from shared.problems import Problem, ProblemMap, invalid_fields


def _no_notification(missing: NotificationNotFound) -> Problem:
    return Problem(404, "No such notification", f"No {missing} here.", kind="not-found")


def _not_resendable(refused: NotResendable) -> Problem:
    detail = f"The message is {refused.status}; only uncertain or failed ones are resent."
    return Problem(409, "Not resendable", detail, kind="not-resendable")


def _no_endpoint(missing: EndpointNotFound) -> Problem:
    return Problem(404, "No such webhook endpoint", f"No endpoint {missing}.", kind="not-found")


def _no_delivery(missing: DeliveryNotFound) -> Problem:
    return Problem(404, "No such webhook delivery", f"No delivery {missing}.", kind="not-found")


def _not_now(refused: EndpointRefused) -> Problem:
    """An endpoint or delivery whose state does not allow the command; `type` names why."""
    kind = refused.code.replace("_", "-")
    return Problem(409, "Not allowed in this state", refused.message, kind=kind)


def _no_message(unknown: UnknownMessage) -> Problem:
    return bad_query(unknown.parameter, "unknown_cursor", f"no message {unknown}")


PROBLEMS: ProblemMap = {
    NotificationNotFound: _no_notification,
    NotResendable: _not_resendable,
    EndpointNotFound: _no_endpoint,
    DeliveryNotFound: _no_delivery,
    EndpointRefused: _not_now,  # DeliveryRefused too
    InvalidEndpoint: lambda invalid: invalid_fields(invalid.errors),
    IdempotencyMismatch: lambda _: idempotency_conflict(),
    UnknownMessage: _no_message,
}
