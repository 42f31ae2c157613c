"""QuickCopy: the copy a command decides on is a deep copy, whatever it shares.

The repository copies a cached aggregate for every command, so that a decision which fails
leaves the cache untouched: a copy that shared anything mutable would let a failed command
change what the next one sees.
"""

from __future__ import annotations

import copy
import inspect
import pkgutil
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from importlib import import_module
from typing import Any

from eventsourcing.domain import Aggregate

import services
from services.intake.domain import RefundRequest
from services.notify.messages.domain import Correspondence
from services.payout.domain import Payout
from shared.money import Money
from shared.quick_copy import QuickCopy, copied
from tests.unit.test_intake_domain import approve, pay, refund


def containers(value: Any) -> list[Any]:
    """Every dict and list reachable from `value`."""
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            if isinstance(item, list):
                found.append(item)
            stack.extend(item)
    return found


def lived_refund() -> RefundRequest:
    made = refund()
    approve(made)
    pay(made)
    return made


def test_a_refund_copies_as_deepcopy_copies_it() -> None:
    original = lived_refund()
    quick = copy.deepcopy(original)  # through QuickCopy.__deepcopy__
    assert type(quick) is RefundRequest
    assert quick.__dict__ == original.__dict__
    # Not one container is shared with the original: changing the copy changes nothing.
    originals = {id(c) for c in containers(original.__dict__)}
    assert originals and not originals & {id(c) for c in containers(quick.__dict__)}
    before = copy.deepcopy(original.__dict__)
    for container in containers(quick.__dict__):
        if isinstance(container, dict):
            container["changed"] = True
        else:
            container.append("changed")
    assert original.__dict__ == before


def test_the_copy_decides_apart_from_the_original() -> None:
    original = refund()
    approve(original)
    decided = copy.deepcopy(original)
    pay(decided)
    assert (decided.status, original.status) == ("paid", "approved")
    assert len(decided.collect_events()) == 3  # created, approved, paid: its own list
    assert len(original.collect_events()) == 2


def test_immutable_values_are_shared_and_containers_keep_their_aliasing() -> None:
    stamp, amount, rate = datetime(2026, 12, 7, tzinfo=UTC), Money(100, "CNY"), Decimal("7.1")
    shared_list: list[Any] = [uuid.uuid4(), stamp]
    value: dict[str, Any] = {
        "a": shared_list,
        "b": shared_list,
        "money": amount,
        "rate": rate,
        "t": (1, [2]),
    }
    made = copied(value, {})
    assert made == value
    assert made["a"] is made["b"] and made["a"] is not shared_list  # aliasing as deepcopy keeps it
    assert made["money"] is amount and made["rate"] is rate and made["a"][1] is stamp
    assert made["t"][1] is not value["t"][1]  # a tuple's mutable items are copied (by deepcopy)


def test_a_payout_and_a_self_referencing_container_copy() -> None:
    loop: list[Any] = []
    loop.append(loop)
    made = copied(loop, {})
    assert made[0] is made and made is not loop
    payout = Payout.__new__(Payout)
    payout.__dict__.update({"sent": [("po_1-1", "gw")], "amount": Money(5, "EUR"), "result": {}})
    twin = copy.deepcopy(payout)
    twin.sent.append(("po_1-2", "gw"))
    assert twin.result is not None
    twin.result["status"] = "paid"
    assert (payout.sent, payout.result) == ([("po_1-1", "gw")], {})
    assert twin.amount is payout.amount


def test_every_aggregate_of_ours_copies_quickly() -> None:
    """A new aggregate class without it would quietly take deepcopy's slow walk again."""
    found = []
    for module_info in pkgutil.walk_packages(services.__path__, "services."):
        if module_info.name.endswith("__main__"):  # importing one starts the service
            continue
        module = import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Aggregate) and cls.__module__ == module.__name__:
                found.append(cls)
    assert len(found) >= 20
    slow = [c for c in found if not issubclass(c, QuickCopy) and c is not Correspondence]
    assert slow == []
