"""The refusal every rule of a refund raises when a command does not fit its state.

Its own module because the refund's rules are split by concept (domain.py, returns.py) and
both refuse alike; problems.py answers it with a 409 naming the rule's code.
"""

from __future__ import annotations


class LifecycleError(Exception):
    """The command does not fit the refund's current state (answered 409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message  # code: the problem's kind (`not_paid`)
