"""A deep copy of an aggregate that shares what cannot change.

The repository hands every command a deep copy of the cached aggregate, so a decision that
fails leaves the cache as it was. `copy.deepcopy` copies immutable values too: a UUID, a
datetime or a Decimal goes through `__reduce_ex__` and is rebuilt, and that was most of a
refund's 95 µs copy, taken at each of its loads. Here immutable values are shared (no code
can tell a shared immutable value from a copy of it) and containers are copied as deepcopy
copies them, aliasing kept: a list held twice is copied once, and held twice in the copy.
Anything else is left to `copy.deepcopy`, with the same memo.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import uuid
from typing import Any, Self

from shared.money import Money

# Types whose instances never change: shared, not copied. (Not tuple or frozenset: their
# items may be mutable.)
IMMUTABLE: frozenset[type] = frozenset(
    {
        str,
        int,
        float,
        bool,
        bytes,
        type(None),
        uuid.UUID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
        Money,  # frozen, of an int and a str
    }
)


def copied(value: Any, memo: dict[int, Any]) -> Any:
    """`value`, deep-copied as `copy.deepcopy(value, memo)` would, immutable parts shared."""
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    if kind is dict or kind is list:
        seen = memo.get(id(value))
        if seen is not None:
            return seen
        if kind is dict:
            made: Any = {}
            memo[id(value)] = made
            for key, item in value.items():
                made[key if type(key) in IMMUTABLE else copied(key, memo)] = (
                    item if type(item) in IMMUTABLE else copied(item, memo)
                )
        else:
            made = []
            memo[id(value)] = made
            made.extend(item if type(item) in IMMUTABLE else copied(item, memo) for item in value)
        _keep_alive(value, memo)
        return made
    return copy.deepcopy(value, memo)


def _keep_alive(original: Any, memo: dict[int, Any]) -> None:
    # As copy.deepcopy does: memo is keyed by id(), so the originals it names must outlive it.
    memo.setdefault(id(memo), []).append(original)


class QuickCopy:
    """Mixin for an aggregate: `copy.deepcopy` of it goes through `copied`."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        made = object.__new__(type(self))
        memo[id(self)] = made
        _keep_alive(self, memo)
        made.__dict__.update(
            (name, value if type(value) in IMMUTABLE else copied(value, memo))
            for name, value in self.__dict__.items()
        )
        return made
