"""How intake's domain and application errors are answered: each one's RFC 9457 problem."""

from __future__ import annotations

from services.intake.application import CustomerNotFound, OrderMismatch, RefundNotFound
from services.intake.domain import LifecycleError
from services.intake.orders import FieldProblems
from shared.idempotency import IdempotencyMismatch
from shared.keyed import idempotency_conflict
from shared.problems import Problem, ProblemMap, invalid_fields


def refund_not_found(missing: RefundNotFound) -> Problem:
    # Another tenant's refund, and ids of other aggregates, look the same: never a 403.
    return Problem(404, "No such refund", f"No refund {missing}.", kind="not-found")


def not_allowed(refused: LifecycleError) -> Problem:
    kind = refused.code.replace("_", "-")
    return Problem(409, "Not allowed in this state", refused.message, kind=kind)


def order_mismatch(mismatch: OrderMismatch) -> Problem:
    return Problem(
        409,
        "Order snapshot mismatch",
        "This order was first recorded with other facts; send the same order snapshot.",
        kind="order-snapshot-mismatch",
        errors=[p.as_dict() for p in mismatch.problems],
    )


def field_problems(refused: FieldProblems) -> Problem:
    return invalid_fields([p.as_dict() for p in refused.problems])


def customer_not_found(missing: CustomerNotFound) -> Problem:
    tenant, customer_id = missing.args
    detail = f"Tenant {tenant} has no customer {customer_id}."
    return Problem(404, "No such customer", detail, kind="not-found")


PROBLEMS: ProblemMap = {
    RefundNotFound: refund_not_found,
    IdempotencyMismatch: lambda _: idempotency_conflict(),
    LifecycleError: not_allowed,
    OrderMismatch: order_mismatch,
    FieldProblems: field_problems,  # OverRefund too; OrderMismatch is mapped apart
    CustomerNotFound: customer_not_found,
}
