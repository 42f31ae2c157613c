"""Every stored event class carries a version, and a change of shape needs a new one.

`tests/fixtures/event_versions.json` records, for every stored event class (by the topic
eventsourcing stores with it), its `class_version` and its fields. A class whose fields
differ from the record without a higher version fails here: a store written before the
change would load with the wrong shape. Raise `class_version`, add the
`upcast_vN_vN+1` static method (docs/architecture.md), then record the new shape:

    .venv/bin/python -m tests.unit.test_event_versions --write

A recorded topic the code no longer defines (a moved or renamed class) must still
resolve, through `eventsourcing.utils.register_topic`, or old stores could not load.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.utils import get_topic, resolve_topic

REGISTRY = Path(__file__).parents[1] / "fixtures" / "event_versions.json"
PACKAGES = ("services", "shared")
# Every event has these; they say nothing about its shape.
ENVELOPE = {"originator_id", "originator_version", "timestamp"}


def _modules() -> list[Any]:
    found = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
            if info.name.endswith("__main__"):
                continue
            found.append(importlib.import_module(info.name))
    return found


def stored_event_classes() -> dict[str, type]:
    """topic → class, for every event class of every aggregate our code defines."""
    events: dict[str, type] = {}
    for module in _modules():
        for value in vars(module).values():
            if not (
                isinstance(value, type)
                and issubclass(value, Aggregate)
                and value is not Aggregate
                and value.__module__ == module.__name__
            ):
                continue
            for attribute in vars(value).values():
                if isinstance(attribute, type) and issubclass(attribute, DomainEvent):
                    events[get_topic(attribute)] = attribute
    return events


def shape(event_class: type) -> dict[str, Any]:
    fields = sorted(f.name for f in dataclasses.fields(event_class) if f.name not in ENVELOPE)
    return {"version": getattr(event_class, "class_version", 1), "fields": fields}


def current_shapes() -> dict[str, dict[str, Any]]:
    return {topic: shape(cls) for topic, cls in sorted(stored_event_classes().items())}


def recorded() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(REGISTRY.read_text())
    return loaded


def test_no_recorded_event_changed_shape_without_a_new_version() -> None:
    """Each recorded topic, resolved as an old store would resolve it (a moved class through
    its registered old topic), still has the recorded fields, or a higher class_version."""
    stored_event_classes()  # imports every module, as a running service has
    changed, unresolved = [], []
    for topic, before in recorded().items():
        try:
            now = shape(resolve_topic(topic))
        except Exception as error:  # a moved class without register_topic
            unresolved.append(f"{topic}: {error}")
            continue
        if now["version"] < before["version"]:
            changed.append(
                f"{topic}: class_version went down {before['version']} -> {now['version']}"
            )
        elif now["fields"] != before["fields"] and now["version"] == before["version"]:
            changed.append(
                f"{topic}: fields {before['fields']} -> {now['fields']} without a new"
                f" class_version (still {now['version']})"
            )
    assert not unresolved, "register the old topics of moved classes:\n" + "\n".join(unresolved)
    assert not changed, (
        "stored event shapes changed; raise class_version, add the upcaster, then run"
        " `.venv/bin/python -m tests.unit.test_event_versions --write`:\n" + "\n".join(changed)
    )


def test_every_stored_event_class_is_recorded_as_it_is() -> None:
    record = recorded()
    stale = [
        f"{topic}: recorded {record.get(topic)}, now {now}"
        for topic, now in current_shapes().items()
        if record.get(topic) != now
    ]
    assert not stale, (
        "record the stored event classes as they are now (after versioning any change):"
        " `.venv/bin/python -m tests.unit.test_event_versions --write`\n" + "\n".join(stale)
    )


def test_every_version_above_one_has_its_upcasters() -> None:
    missing = []
    for topic, cls in stored_event_classes().items():
        for version in range(1, getattr(cls, "class_version", 1)):
            if not callable(getattr(cls, f"upcast_v{version}_v{version + 1}", None)):
                missing.append(f"{topic}: upcast_v{version}_v{version + 1}")
    assert not missing, "class_version raised without an upcaster:\n" + "\n".join(missing)


def test_the_record_covers_a_real_store_s_events() -> None:
    """The discovery finds the aggregates a service stores (a check on the check)."""
    topics = set(current_shapes())
    assert "services.intake.domain:RefundRequest.Requested" in topics
    assert "shared.idempotency:IdempotencyKey.Reused" in topics


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        # Topics recorded earlier stay recorded: old stores still hold them.
        merged = {**recorded(), **current_shapes()} if REGISTRY.exists() else current_shapes()
        REGISTRY.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        print(f"recorded {len(merged)} stored event classes in {REGISTRY}")
    else:
        print(json.dumps(current_shapes(), indent=1))
