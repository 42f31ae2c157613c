"""What each of payout's domain errors answers over HTTP: one problem per error, installed once."""

from __future__ import annotations

from services.payout.application import PayoutNotFound, ReconciliationNotFound
from services.payout.callbacks import CallbackRefused, CallbackReplayed, Refusal
from services.payout.domain import PayoutActionRefused
from services.payout.providers.gateway import CALLBACK_ID_HEADER
from services.payout.reconcile import MalformedReport
from services.payout.tenant_providers import AccountBusy, AccountNotConfigured, UnknownProvider
from shared.problems import Problem, ProblemMap, invalid, not_found

REFUSALS: dict[Refusal, tuple[int, str]] = {
    "bad-signature": (401, "The signature is missing, wrong, or too old."),
    "malformed": (400, "The callback is not the provider's notification."),
    "id-mismatch": (400, f"{CALLBACK_ID_HEADER} differs from the body."),
    "unknown-key": (401, "Signed with a key, serial or account this tenant has not configured."),
    "undecryptable": (400, "The notification's resource cannot be decrypted."),
}


def action_refused(error: PayoutActionRefused) -> Problem:
    return Problem(409, "Not allowed in this state", str(error), kind="payout-action-refused")


def callback_refused(error: CallbackRefused) -> Problem:
    status, detail = REFUSALS[error.reason]
    return Problem(status, "Callback refused", detail, kind=f"callback-{error.reason}")


def callback_replayed(error: CallbackReplayed) -> Problem:
    return Problem(
        409,
        "Callback already processed",
        f"Callback {error} was processed before; it has no further effect.",
        kind="callback-replayed",
    )


PROBLEMS: ProblemMap = {
    PayoutNotFound: lambda error: not_found("payout", f"No payout {error}."),
    ReconciliationNotFound: lambda error: not_found(
        "reconciliation", f"No reconciliation {error}."
    ),
    PayoutActionRefused: action_refused,
    MalformedReport: lambda error: invalid("body.report", "malformed_report", str(error)),
    CallbackRefused: callback_refused,
    CallbackReplayed: callback_replayed,
    UnknownProvider: lambda error: not_found("provider", f"{error}."),
    AccountNotConfigured: lambda error: not_found("provider account", f"{error}."),
    AccountBusy: lambda error: Problem(
        409, "Account changed meanwhile", f"{error}.", kind="conflict"
    ),
}
