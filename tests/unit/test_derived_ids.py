"""Derived ids are the standard library's uuid5, bit for bit: stored events and published
event ids made before `shared.ids.uuid5` must keep addressing the same aggregates."""

from __future__ import annotations

import copy
import pickle
import random
import uuid

from shared.contracts.envelope import EVENT_ID_NAMESPACE, stable_event_id, traceparent_for
from shared.ids import NAMESPACE, derived_id, uuid5


def test_uuid5_is_the_standard_librarys_for_any_name() -> None:
    alphabet = "abcXYZ019/_-.:é漢🙂 "
    draw = random.Random(20261207)
    names = ["", "/", "rf_" + "0" * 32] + [
        "".join(draw.choice(alphabet) for _ in range(draw.randint(1, 60))) for _ in range(2000)
    ]
    for namespace in (NAMESPACE, EVENT_ID_NAMESPACE, uuid.NAMESPACE_DNS, uuid.uuid4()):
        for name in names:
            ours, theirs = uuid5(namespace, name), uuid.uuid5(namespace, name)
            assert ours == theirs, (namespace, name)
            assert (ours.version, ours.variant) == (5, uuid.RFC_4122)
            assert (str(ours), hash(ours), ours.is_safe) == (
                str(theirs),
                hash(theirs),
                theirs.is_safe,
            )


def test_a_derived_uuid_behaves_as_any_uuid() -> None:
    made = uuid5(NAMESPACE, "tenant/rf_1/received")
    assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301 - our own bytes
    assert copy.deepcopy(made) == made
    assert uuid.UUID(made.hex) == made
    assert {made: 1}[uuid.UUID(str(made))] == 1


def test_ids_derived_before_keep_their_values() -> None:
    # Values the standard library's uuid5 gave, written out: stored history holds these.
    assert derived_id("acme", "rf_1") == uuid.UUID("3041ced9-4451-58e0-ab2b-864a71f1f7b7")
    originator = uuid.UUID("5b0c56a1-2d0e-4b8e-9a55-0f3e9d1f6c01")
    event_id = stable_event_id("intake", originator, 3)
    assert event_id == "366f4989-67a5-5aff-b02d-87e679865b58"
    assert traceparent_for("rf_1", event_id) == (
        "00-08193e15d8f256d4a682ab3daaa7afdf-366f498967a55aff-01"
    )
