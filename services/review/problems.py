"""What each of review's domain errors answers over HTTP, declared once for every route."""

from __future__ import annotations

from services.review.application import CaseNotFound, ClaimNotFound
from services.review.duties import CaseStateError, DutyViolation
from services.review.policy_versions import VersionExists
from services.review.recovery import ClaimClosed
from shared.idempotency import IdempotencyMismatch
from shared.keyed import idempotency_conflict
from shared.problems import Problem, ProblemMap


def _no_case(error: CaseNotFound) -> Problem:
    return Problem(404, "No such case", f"No review case for {error.refund_id}.", kind="not-found")


def _no_claim(error: ClaimNotFound) -> Problem:
    detail = f"No recovery claim against {error.party} for {error.refund_id}."
    return Problem(404, "No such claim", detail, kind="not-found")


def _refused(violation: DutyViolation) -> Problem:
    return Problem(
        403,
        "Separation of duties",
        violation.message,
        kind="separation-of-duties",
        errors=[{"field": "actor", "code": violation.rule, "message": violation.message}],
    )


def _wrong_state(error: CaseStateError) -> Problem:
    kind = error.code.replace("_", "-")  # the rule's code, as a problem type
    return Problem(409, "Not allowed in this state", error.message, kind=kind)


def _settled(closed: ClaimClosed) -> Problem:
    return Problem(409, "Claim already settled", str(closed), kind="claim-closed")


def _version_exists(exists: VersionExists) -> Problem:
    detail = f"Policy version {exists} was already published; use a new version."
    return Problem(409, "Version exists", detail, kind="version-exists")


PROBLEMS: ProblemMap = {
    CaseNotFound: _no_case,
    ClaimNotFound: _no_claim,
    DutyViolation: _refused,
    CaseStateError: _wrong_state,
    ClaimClosed: _settled,
    VersionExists: _version_exists,
    IdempotencyMismatch: lambda _: idempotency_conflict(),
}
