"""Which problem document each of notify's refusals becomes; installed once, by bootstrap."""

from __future__ import annotations

from services.notify.messages.application import NotificationNotFound, NotResendable
from services.notify.webhooks.commands import DeliveryNotFound, EndpointNotFound, InvalidEndpoint
from services.notify.webhooks.endpoints import EndpointRefused
from shared.problems import Problem, ProblemMap, invalid_fields, not_allowed, not_found


def _not_resendable(refused: NotResendable) -> Problem:
    detail = f"The message is {refused.status}; only uncertain or failed ones are resent."
    return Problem(409, "Not resendable", detail, kind="not-resendable")


PROBLEMS: ProblemMap = {
    NotificationNotFound: lambda missing: not_found("notification", f"No {missing} here."),
    NotResendable: _not_resendable,
    EndpointNotFound: lambda missing: not_found("webhook endpoint", f"No endpoint {missing}."),
    DeliveryNotFound: lambda missing: not_found("webhook delivery", f"No delivery {missing}."),
    # An endpoint or delivery (DeliveryRefused too) whose state does not allow the command.
    EndpointRefused: lambda refused: not_allowed(refused.code, refused.message),
    InvalidEndpoint: lambda invalid: invalid_fields(invalid.errors),
}
