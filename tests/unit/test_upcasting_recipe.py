"""How a decorator-made event gets a class version and an upcaster (eventsourcing 9.5.6).

Each test stores an event of version 1 in a SQLite store, then replaces the module with a
release whose event stores one more field (version 2, with an upcaster), as an upgrade does,
and loads the stored event with the new code.

The Mapper writes `class_version` into an event's state when the class says > 1, and on
loading runs `upcast_v1_v2`, `upcast_v2_v3`… (static methods of the event class, changing the
state dict in place) from the stored version (1 when absent) up to the class's. An event
made by `@event("Name")` is an ordinary class, so either recipe works:

1. declare the event class explicitly, nested under the aggregate with the same name (so its
   topic stays `module:Aggregate.Name`), with `class_version`, the upcasters and the stored
   fields as annotations (the same names as the method's parameters: an explicit class
   stores its annotations, not the method's parameters), and name it in the decorator:
   `@event(Name)`;
2. keep `@event("Name")` and set the two attributes on the made class after the aggregate
   class statement.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from eventsourcing import utils as eventsourcing_utils
from eventsourcing.application import Application
from eventsourcing.utils import clear_topic_cache, register_topic

MODULE = "upcasting_recipe_cart"

V1 = """
from eventsourcing.domain import Aggregate, event

class Cart(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[str] = []

    @event("ItemAdded")
    def add(self, sku: str) -> None:
        self.items.append(sku)
"""

# Recipe 1: the event declared explicitly, named in the decorator.
V2_EXPLICIT = """
from typing import Any
from eventsourcing.domain import Aggregate, event

class Cart(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[tuple[str, int]] = []

    class ItemAdded(Aggregate.Event):
        sku: str  # an explicit class stores its annotations: repeat the method's parameters
        quantity: int
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["quantity"] = 1  # every item added before quantities were one item

    @event(ItemAdded)
    def add(self, sku: str, quantity: int) -> None:
        self.items.append((sku, quantity))
"""

# Recipe 2: `@event("Name")` kept; the made class gets the version and upcaster afterwards.
V2_ATTRIBUTES = """
from typing import Any
from eventsourcing.domain import Aggregate, event

class Cart(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[tuple[str, int]] = []

    @event("ItemAdded")
    def add(self, sku: str, quantity: int) -> None:
        self.items.append((sku, quantity))


def _item_added_v1_v2(state: dict[str, Any]) -> None:
    state["quantity"] = 1

Cart.ItemAdded.class_version = 2
Cart.ItemAdded.upcast_v1_v2 = staticmethod(_item_added_v1_v2)
"""


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Any]:
    """`release(source)` imports the module as that release ships it (replacing the last).

    The topics registered before (our moved classes' old names) are put back afterwards:
    clearing the cache drops them too, and a later test in this process that loads an old
    store would no longer resolve them."""
    registered = [(topic, obj) for topic, obj in eventsourcing_utils._topic_cache.items()]
    sys.path.insert(0, str(tmp_path))

    def install(source: str) -> ModuleType:
        (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(MODULE, None)
        clear_topic_cache()  # topics resolve to the classes of the release now installed
        importlib.invalidate_caches()
        return importlib.import_module(MODULE)

    yield install
    sys.modules.pop(MODULE, None)
    sys.path.remove(str(tmp_path))
    clear_topic_cache()
    for topic, obj in registered:
        register_topic(topic, obj)


def _store(tmp_path: Path) -> Application[uuid.UUID]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
    return Application(env={**env, "SQLITE_DBNAME": str(tmp_path / "store.sqlite")})


@pytest.mark.parametrize("v2", [V2_EXPLICIT, V2_ATTRIBUTES], ids=["explicit", "attributes"])
def test_a_v1_event_loads_upcast_into_v2(release: Any, tmp_path: Path, v2: str) -> None:
    old = release(V1)
    app = _store(tmp_path)
    cart = old.Cart(owner="li.wei")
    cart.add("SOCKS-M")
    app.save(cart)
    app.close()

    new = release(v2)
    app = _store(tmp_path)
    loaded: Any = app.repository.get(cart.id)
    assert isinstance(loaded, new.Cart)
    assert loaded.items == [("SOCKS-M", 1)]  # the v1 event, upcast
    loaded.add("CAP-BLUE", 2)  # new events are stored as v2 and load as they are
    app.save(loaded)
    assert app.repository.get(cart.id).items == [("SOCKS-M", 1), ("CAP-BLUE", 2)]
    stored = [n.state for n in app.recorder.select_notifications(1, 10)]
    assert b'"class_version":2' in stored[-1] and b"class_version" not in stored[1]
    # The topic did not change: old and new events are the same class.
    topics = {n.topic for n in app.recorder.select_notifications(1, 10)}
    assert topics == {f"{MODULE}:Cart.Opened", f"{MODULE}:Cart.ItemAdded"}
    app.close()


def test_without_an_upcaster_the_v1_event_does_not_load(release: Any, tmp_path: Path) -> None:
    """Why: a field added without a default makes every stored event of the class unloadable
    (a field dropped is ignored; one added with a default loads, but then says nothing of
    what the old event meant)."""
    old = release(V1)
    app = _store(tmp_path)
    cart = old.Cart(owner="li.wei")
    cart.add("SOCKS-M")
    app.save(cart)
    app.close()

    release(V2_ATTRIBUTES.split("\n\ndef _item_added_v1_v2")[0])
    app = _store(tmp_path)
    with pytest.raises(TypeError, match="quantity"):
        app.repository.get(cart.id)
    app.close()
