"""What each of review's domain errors answers over HTTP, declared once for every route."""

from __future__ import annotations

from services.review.application import CaseNotFound, ClaimNotFound
from services.review.duties import CaseStateError, DutyViolation
from services.review.policy_versions import VersionExists
from services.review.recovery import ClaimClosed
from services.review.returns.desk import ReturnNotFound
from services.review.returns.receipts import ReceiptRefused, ReturnStateError
from shared.problems import Problem, ProblemMap, invalid, not_allowed, not_found


def _no_claim(error: ClaimNotFound) -> Problem:
    return not_found("claim", f"No recovery claim against {error.party} for {error.refund_id}.")


def _version_exists(exists: VersionExists) -> Problem:
    detail = f"Policy version {exists} was already published; use a new version."
    return Problem(409, "Version exists", detail, kind="version-exists")


def _settled(closed: ClaimClosed) -> Problem:
    return Problem(409, "Claim already settled", str(closed), kind="claim-closed")


def _refused(violation: DutyViolation) -> Problem:
    return Problem(
        403,
        "Separation of duties",
        violation.message,
        kind="separation-of-duties",
        errors=[{"field": "actor", "code": violation.rule, "message": violation.message}],
    )


PROBLEMS: ProblemMap = {
    CaseNotFound: lambda error: not_found("case", f"No review case for {error.refund_id}."),
    ClaimNotFound: _no_claim,
    DutyViolation: _refused,
    # The rule's code, as a problem type.
    CaseStateError: lambda error: not_allowed(error.code, error.message),
    ClaimClosed: _settled,
    VersionExists: _version_exists,
    ReturnNotFound: lambda error: not_found("return", f"No return for {error.refund_id}."),
    ReturnStateError: lambda error: not_allowed(error.code, error.message),
    ReceiptRefused: lambda error: invalid(error.field, error.code, error.message),
}
