"""Every integration event type keeps a sample of its first version, and today's consumers
still accept it.

`tests/fixtures/events/<type>.json` is one CloudEvent of each type in
`shared.contracts.EVENT_TYPES`, as the release that first published it put it on Kafka
(captured by `scripts/freeze_stores.py`, or written from the model where the frozen mix
cannot produce the type; `MANIFEST.json` says which, and which keystore opens its sealed
fields). A sample is never rewritten: a later release may add fields, never stop accepting
these.

Each consuming service's application (today's code, a fresh SQLite store, that keystore)
handles every sample the way its Kafka consumer does (`handle()`: the reaction and its
tracking row in one transaction). Nothing may raise, and a type the service reacts to must
record something. What a sample's reaction needs is prepared first: for review and notify
the sample's refund is requested (the `refund.requested.v1` sample, re-addressed to that
refund); intake's refunds come from platforms, not events, so intake gets a new request and
the sample is re-addressed to it. The samples' payloads are fed as they are.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from refunds.stores import Stores, open_service
from services.intake.application import UPSTREAM_FACTS
from shared.contracts import EVENT_TYPES, SERVICES, CloudEvent, CustomerErasedV1, RefundRequestedV1
from shared.keystore import open_keystore
from shared.settings import KeystoreSettings
from tests.support.factories import intake_command

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "events"
INDEX: dict[str, dict[str, Any]] = json.loads((SAMPLES / "MANIFEST.json").read_text())
HOW_TO_ADD = (
    "{types}: no sample of its first version in tests/fixtures/events/. Freezing the release "
    "that introduces a type captures one: `.venv/bin/python scripts/freeze_stores.py "
    "--release <version>` (make its mix publish the type, or add it to `from_models` there); "
    "or write <type>.json by hand, a CloudEvent exactly as the relay publishes it, and list it "
    "in tests/fixtures/events/MANIFEST.json (release, origin, keystore)."
)
# The types each service's reaction turns into stored events (services/*/application.py).
REACTS = {
    "intake": {payload.TYPE for payload in UPSTREAM_FACTS},  # the facts intake records
    "review": {
        "refund.requested.v1",
        "refund.withdrawn.v1",
        "refund.evidence_added.v1",
        "refund.appealed.v1",
    },
    "payout": {"review.approved.v1", "review.compensation_offered.v1", "refund.withdrawn.v1"},
    "notify": {
        "refund.requested.v1",
        "refund.withdrawn.v1",
        "review.approved.v1",
        "review.rejected.v1",
        "review.case_opened.v1",
        "review.evidence_requested.v1",
        "review.evidence_received.v1",
        "review.escalated.v1",  # the sample is an appeal's escalation, which the customer hears
        "review.compensation_offered.v1",
        "payout.succeeded.v1",
        "payout.failed.v1",
        "customer.erased.v1",
        # A return's steps, each a customer message (the shipment is the platform's doing).
        "refund.return_requested.v1",
        "return.ship_by_approaching.v1",
        "return.delivered.v1",
        "return.received.v1",
        "return.deadline_missed.v1",
        "refund.exchange_ready.v1",
    },
}
CONTEXT_POSITION = 10_000_000  # prepared messages are tracked at positions no sample has


def _samples() -> dict[str, bytes]:
    """Every sample by type, the request first: later samples may be about the same refund."""
    paths = [path for path in SAMPLES.glob("*.json") if path.name != "MANIFEST.json"]
    first = RefundRequestedV1.TYPE
    return {
        path.stem: path.read_bytes()
        for path in sorted(paths, key=lambda p: (p.stem != first, p.stem))
    }


def test_every_event_type_has_a_sample_of_its_first_version() -> None:
    missing = sorted(set(EVENT_TYPES) - set(_samples()))
    assert not missing, HOW_TO_ADD.format(types=", ".join(missing))
    unlisted = sorted(set(_samples()) - set(INDEX))
    assert not unlisted, f"{unlisted}: list them in tests/fixtures/events/MANIFEST.json"


def test_every_sample_is_as_it_was_captured() -> None:
    """A consumer that stops accepting a sample is fixed in the consumer, never in the sample."""
    for name, raw in _samples().items():
        assert hashlib.sha256(raw).hexdigest() == INDEX[name]["sha256"], (
            f"{name}.json changed since release {INDEX[name]['release']} published it"
        )


def test_every_sample_parses_as_its_type() -> None:
    for name, raw in _samples().items():
        event = CloudEvent.from_bytes(raw)
        assert event.type == name, f"{name}.json holds a {event.type}"
        payload = event.payload()
        assert isinstance(payload, EVENT_TYPES[name]), name
        assert payload.refund_id == event.subject and payload.tenant == event.tenant, name
        assert (ROOT / INDEX[name]["keystore"]).is_file(), f"{name}: its keystore is missing"


# -- each consumer's reaction -----------------------------------------------------------------


class Consumer:
    """One service's application on a fresh store, handling messages like its Kafka consumer."""

    def __init__(self, service: str, data_dir: Path) -> None:
        self.service = service
        self.context = CONTEXT_POSITION
        self._opened = open_service(Stores(data_dir, None, None), service)
        self.app = self._opened.__enter__()
        if service != "payout":  # personal data is sealed; these open or seal it
            settings = KeystoreSettings(data_dir=data_dir, database_url=None)
            self.app.keystore = open_keystore(settings, service)

    def close(self) -> None:
        self._opened.__exit__(None, None, None)

    def head(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    def handle(self, event: CloudEvent) -> bool:
        return bool(self.app.handle(event))

    def prepare(self, event: CloudEvent) -> None:
        """Feed a message the sample's reaction relies on, tracked at a position of its own."""
        self.context += 1
        prepared = event.model_copy(update={"position": self.context})
        assert self.handle(prepared), f"{self.service} refused the prepared {event.type}"


def _addressed(event: CloudEvent, refund_id: str, tenant: str, **data: Any) -> CloudEvent:
    """The same message about another refund (its payload otherwise unchanged)."""
    payload = {**event.data, "refund_id": refund_id, "tenant": tenant, **data}
    return event.model_copy(
        update={"subject": refund_id, "correlationid": refund_id, "tenant": tenant, "data": payload}
    )


def _request_for(requested: CloudEvent, sample: CloudEvent, *, rejected: bool) -> CloudEvent:
    """The requested sample, re-addressed to the sample's refund; `rejected`: asked for
    without a reason, ten days after delivery, so that the policy refuses it by rule (an
    appeal needs a rejection)."""
    payload = sample.payload()
    changes: dict[str, Any] = {"order_id": getattr(payload, "order_id", requested.data["order_id"])}
    if rejected:
        at = RefundRequestedV1.model_validate(requested.data).requested_at
        changes |= {
            "reason": "changed_mind",
            "delivered_at": (at - timedelta(days=10)).isoformat(),
            "paid_at": (at - timedelta(days=12)).isoformat(),
        }
    return _addressed(requested, payload.refund_id, payload.tenant, **changes)


def _in_intake(consumer: Consumer, sample: CloudEvent) -> CloudEvent:
    """A new request at intake (platforms make refunds, not events) and the sample about it."""
    refund, _ = consumer.app.request_refund(
        tenant=sample.tenant, draft=intake_command(80000), actor="tenant:samples", keyed=None
    )
    return _addressed(sample, f"rf_{refund.id.hex}", sample.tenant)


def _prepared(consumer: Consumer, sample: CloudEvent, requested: CloudEvent) -> CloudEvent:
    """Set up what the sample's reaction needs; the message to handle."""
    if consumer.service == "intake":
        return _in_intake(consumer, sample)
    if sample.type == requested.type or consumer.service == "payout":
        return sample
    if isinstance(payload := sample.payload(), CustomerErasedV1):
        for refund_id in payload.refund_ids:
            consumer.prepare(_addressed(requested, refund_id, payload.tenant))
        return sample
    rejected = sample.type == "refund.appealed.v1"
    consumer.prepare(_request_for(requested, sample, rejected=rejected))
    return sample


def _with_keys_of(keystore: Path, other: Path) -> None:
    """Add `other`'s customer keys to `keystore` (both wrapped under the dev master key):
    a later release's sample is prepared with the first release's request, whose sealed
    fields open only with the keys of the release that captured it."""
    columns = "key_id, tenant, customer_id, generation, wrapped, created_at, erased_at, erased_by"
    with closing(sqlite3.connect(other)) as source:
        rows = source.execute(f"SELECT {columns} FROM customer_keys").fetchall()  # noqa: S608
    with closing(sqlite3.connect(keystore)) as target, target:
        target.executemany(
            f"INSERT OR IGNORE INTO customer_keys ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            rows,
        )


@pytest.fixture(params=SERVICES)
def consumers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Consumer]]:
    """A consumer of the service for each keystore the samples need, with a copy of it (and
    the keys of the request sample's keystore, which prepares every sample's refund)."""
    made: dict[str, Consumer] = {}
    requests_keystore = ROOT / INDEX[RefundRequestedV1.TYPE]["keystore"]
    for keystore in sorted({entry["keystore"] for entry in INDEX.values()}):
        data_dir = tmp_path / str(len(made))
        data_dir.mkdir()
        shutil.copyfile(ROOT / keystore, data_dir / "keystore.sqlite")
        if ROOT / keystore != requests_keystore:
            _with_keys_of(data_dir / "keystore.sqlite", requests_keystore)
        made[keystore] = Consumer(request.param, data_dir)
    yield made
    for consumer in made.values():
        consumer.close()


def test_each_consumer_accepts_every_sample(consumers: dict[str, Consumer]) -> None:
    requested = CloudEvent.from_bytes((SAMPLES / f"{RefundRequestedV1.TYPE}.json").read_bytes())
    for name, raw in _samples().items():
        consumer = consumers[INDEX[name]["keystore"]]
        sample = _prepared(consumer, CloudEvent.from_bytes(raw), requested)
        before = consumer.head()
        assert consumer.handle(sample), f"{consumer.service}: {name} counted as a duplicate"
        recorded = consumer.head() - before
        if name in REACTS[consumer.service]:
            assert recorded, f"{consumer.service} recorded nothing for the {name} sample"
        # Delivered again (Kafka redelivers), it changes nothing.
        assert not consumer.handle(sample), f"{consumer.service}: {name} applied twice"
