"""How intake's domain and application errors are answered: each one's RFC 9457 problem."""

from __future__ import annotations

from services.intake.application import CustomerNotFound, OrderMismatch, RefundNotFound
from services.intake.lifecycle import LifecycleError
from services.intake.orders import FieldProblems
from shared.problems import Problem, ProblemMap, invalid_fields, not_allowed, not_found


def order_mismatch(mismatch: OrderMismatch) -> Problem:
    return Problem(
        409,
        "Order snapshot mismatch",
        "This order was first recorded with other facts; send the same order snapshot.",
        kind="order-snapshot-mismatch",
        errors=[p.as_dict() for p in mismatch.problems],
    )


def customer_not_found(missing: CustomerNotFound) -> Problem:
    tenant, customer_id = missing.args
    return not_found("customer", f"Tenant {tenant} has no customer {customer_id}.")


PROBLEMS: ProblemMap = {
    # Another tenant's refund, and ids of other aggregates, look the same: never a 403.
    RefundNotFound: lambda missing: not_found("refund", f"No refund {missing}."),
    LifecycleError: lambda refused: not_allowed(refused.code, refused.message),
    OrderMismatch: order_mismatch,
    # OverRefund too; OrderMismatch is mapped apart
    FieldProblems: lambda refused: invalid_fields([p.as_dict() for p in refused.problems]),
    CustomerNotFound: customer_not_found,
}
