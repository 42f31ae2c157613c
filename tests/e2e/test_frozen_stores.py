"""History survives upgrades: every release's frozen stores work with today's code.

`tests/fixtures/stores/<release>/` holds what a deployment of that release kept — each
service's SQLite store, the keystore and the sandbox gateway's ledger — written by
`scripts/freeze_stores.py --release <release>`, with a MANIFEST.json saying what each refund
is. For every such folder, on a copy:

(a) each service's application, today's code, loads every aggregate in its log;
(b) `refunds audit rebuild` replays every read model from the log and finds it equal to the
    frozen one; (c) `refunds audit verify` finds the four ledgers intact;
(d) `refunds dev` starts on the copy and goes on: refunds read as they were, the refunds left
    in flight are decided by people over the staff API (a return's goods sent back and
    received; one whose ship-by date passed since the freeze is closed by review's clock
    instead) and paid exactly once at the gateway,
    the platform key issued by `refunds api-keys create` still works and the revoked one does
    not, and the webhook endpoint signs with its frozen secret. The ledgers still verify.

A part that cannot be reached fails the test; nothing here is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from refunds.devstack import Ports
from refunds.stores import Stores, open_service
from shared.contracts import SERVICES
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.support.ports import stack_base
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
FROZEN = ROOT / "tests" / "fixtures" / "stores"
RELEASES = sorted(p.name for p in FROZEN.iterdir() if (p / "MANIFEST.json").is_file())
CLI = Path(sys.executable).with_name("refunds")
PAGE = 500
# People who never acted in a frozen store, so no separation-of-duties rule stops them; a
# senior first, for the tiers that need one.
APPROVERS = (
    ("upgrade.senior", "senior_reviewer"),
    ("upgrade.reviewer", "reviewer"),
    ("upgrade.finance", "finance"),
    ("upgrade.second", "reviewer"),
)


def _staff(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, [role], 3600), DEV_JWT_SECRET)}"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Frozen:
    release: str
    data_dir: Path  # a copy: the fixture itself is never written
    manifest: dict[str, Any]

    def key_of(self, refund: dict[str, Any]) -> str:
        if refund["tenant"] == self.manifest["dev_tenant"]:
            return str(self.manifest["dev_api_key"])
        return str(self.manifest["api_keys"]["active"]["key"])


@pytest.fixture(params=RELEASES)
def frozen(request: pytest.FixtureRequest, tmp_path: Path) -> Frozen:
    source = FROZEN / request.param
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    manifest = json.loads((source / "MANIFEST.json").read_text())
    return Frozen(request.param, data_dir, manifest)


def test_the_current_release_has_a_frozen_store() -> None:
    """Each release adds its own frozen store, which every later release must keep loading."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert RELEASES, f"no frozen stores in {FROZEN}"
    assert version in RELEASES, (
        f"release {version} has no frozen store: run "
        f"`.venv/bin/python scripts/freeze_stores.py --release {version}` and commit "
        f"tests/fixtures/stores/{version}/ (and any new tests/fixtures/events/*.json)"
    )


def test_the_frozen_files_are_as_their_release_wrote_them(frozen: Frozen) -> None:
    """A frozen store is history: when today's code cannot read it, fix the code (an
    upcaster, a registered topic), never the store."""
    for name, entry in frozen.manifest["files"].items():
        digest = hashlib.sha256((FROZEN / frozen.release / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{frozen.release}/{name} changed since it was frozen"


# -- (a) every aggregate loads --------------------------------------------------------------


def test_every_aggregate_of_every_service_loads(frozen: Frozen) -> None:
    stores = Stores(frozen.data_dir, None, None)
    for service in SERVICES:
        with open_service(stores, service) as app:
            events, start = 0, 1
            ids: dict[Any, None] = {}  # originator ids, in log order
            while found := app.recorder.select_notifications(start, PAGE):
                for notification in found:
                    app.mapper.to_domain_event(notification)  # every stored event decodes
                    ids[notification.originator_id] = None
                events += len(found)
                start = found[-1].id + 1
            frozen_count = frozen.manifest["files"][f"{service}.sqlite"]["events"]
            assert events == frozen_count, f"{service}: {events} events, frozen {frozen_count}"
            loaded = Counter[str]()
            for originator_id in ids:
                aggregate = app.repository.get(originator_id)  # every event applies
                loaded[type(aggregate).__name__] += 1
            assert sum(loaded.values()) == len(ids), service


# -- (b) read models rebuild, (c) ledgers verify --------------------------------------------


def _audit(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "audit", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_clean_env(),
    )


def _assert_rebuilt_and_verified(data_dir: Path, *verify_options: str) -> None:
    rebuilt = _audit("rebuild", data_dir=data_dir)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    rows = [line for line in rebuilt.stdout.splitlines()[1:] if "/" in line.split(" ")[0]]
    assert len(rows) >= len(SERVICES), rebuilt.stdout  # every service has read models
    assert all(row.split()[-1] == "0" for row in rows), rebuilt.stdout
    verified = _audit("verify", *verify_options, data_dir=data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count(" ok ") == len(SERVICES), verified.stdout


def test_read_models_rebuild_equal_and_the_ledgers_verify(frozen: Frozen) -> None:
    _assert_rebuilt_and_verified(frozen.data_dir)


# -- (d) the stack starts on them and goes on -----------------------------------------------


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("REFUNDS_", "SANDBOX_"))}


class RunningStack:
    """`refunds dev --data-dir <copy>`, as a user restarts it after an upgrade."""

    def __init__(self, data_dir: Path) -> None:
        base = stack_base()
        self.ports = Ports.from_base(base)
        self.output: list[str] = []
        self.up = threading.Event()
        self.process = subprocess.Popen(
            # As those releases ran: their dev tenant had no provider accounts of its own, and
            # an upgrade connects none (refunds go to the sandbox gateway, as they went then).
            [
                *(str(CLI), "dev", "--data-dir", str(data_dir), "--base-port", str(base)),
                "--no-providers",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_clean_env(),
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self.up.wait(120) or self.process.poll() is not None:
            self.stop()
            raise AssertionError("refunds dev did not come up:\n" + "".join(self.output[-40:]))
        self.http = {
            name: httpx.Client(base_url=f"http://127.0.0.1:{self.ports.of(name)}", timeout=20)
            for name in ("intake", "review", "payout", "notify", "gateway", "carrier")
        }

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "Ctrl-C to stop" in line:
                self.up.set()

    def stop(self) -> None:
        for client in getattr(self, "http", {}).values():
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=90)

    def post(self, service: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        return self.http[service].post(path, json=body, headers={**headers, **key})


@pytest.fixture
def stack(frozen: Frozen) -> Iterator[RunningStack]:
    running = RunningStack(frozen.data_dir)
    try:
        yield running
    finally:
        running.stop()


def _until(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)
    return value


def _view(stack: RunningStack, refund_id: str, key: str) -> dict[str, Any]:
    response = stack.http["intake"].get(f"/v1/refunds/{refund_id}", headers=_bearer(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _carry_on(stack: RunningStack, frozen: Frozen, refund_id: str) -> dict[str, Any]:
    """Do what the refund waits for — the evidence asked for, approvals by people who have not
    acted on it, the goods sent back and received — until it is paid."""
    refund = frozen.manifest["refunds"][refund_id]
    key = frozen.key_of(refund)
    tried: set[str] = set()
    evidence_sent = returned = False
    deadline = time.monotonic() + 180
    while (view := _view(stack, refund_id, key))["status"] != "paid":
        assert time.monotonic() < deadline, f"{refund_id} ({refund['kind']}) stuck: {view}"
        if view["status"] == "awaiting_evidence" and not evidence_sent:
            photo = {"evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/9.jpg"}]}
            answer = stack.post("intake", f"/v1/refunds/{refund_id}/evidence", photo, _bearer(key))
            assert answer.status_code in (200, 201), answer.text
            evidence_sent = True
        elif view["status"] == "in_review":
            _approve_once(stack, refund_id, refund, tried)
        elif view["status"] == "awaiting_return" and not returned:
            _send_back_and_receive(stack, refund_id, key, view["return"]["items"])
            returned = True
        time.sleep(0.3)
    return view


def _send_back_and_receive(
    stack: RunningStack, refund_id: str, key: str, items: list[dict[str, Any]]
) -> None:
    """The platform posts a parcel of the sandbox carrier, which review subscribes; the
    carrier delivers it and the warehouse finds everything as expected."""
    carrier = stack.http["carrier"]
    made = carrier.post("/sandbox/shipments", json={"company": "shunfeng"})
    assert made.status_code in (200, 201), made.text
    number = made.json()["number"]
    shipment = {"carrier": "shunfeng", "tracking_number": number}
    url = f"/v1/refunds/{refund_id}/return-shipment"
    posted = stack.post("intake", url, shipment, _bearer(key))
    assert posted.status_code in (200, 201), posted.text
    parcel = f"/sandbox/shipments/shunfeng/{number}"
    _until(lambda: carrier.get(parcel).json()["subscribed"], f"review to subscribe {number}")
    moved = carrier.post(f"{parcel}/advance", json={"to": "delivered"})
    assert moved.status_code == 200, moved.text
    _until(lambda: _view(stack, refund_id, key)["status"] == "return_delivered", "the delivery")
    receipt = {
        "items": [
            {"sku": i["sku"], "quantity": i["quantity"], "condition": "as_expected"} for i in items
        ]
    }
    warehouse = _staff("upgrade.warehouse", "warehouse")
    answer = stack.post("review", f"/v1/returns/{refund_id}/receipt", receipt, warehouse)
    assert answer.status_code in (200, 201), answer.text


def _approve_once(
    stack: RunningStack, refund_id: str, refund: dict[str, Any], tried: set[str]
) -> None:
    case = stack.http["review"].get(f"/v1/cases/{refund_id}", headers=_staff(*APPROVERS[1]))
    assert case.status_code == 200, case.text
    if case.json()["state"] != "pending":
        return
    done = {approval["person"] for approval in case.json()["approvals"]}
    sub, role = next(p for p in APPROVERS if p[0] not in done | tried)
    approval = {"amount": refund["amount"], "note": "decided after the upgrade"}
    answer = stack.post("review", f"/v1/cases/{refund_id}/approve", approval, _staff(sub, role))
    tried.add(sub)
    assert answer.status_code in (200, 201, 403, 409), answer.text


def test_the_stack_goes_on_from_the_frozen_stores(frozen: Frozen, stack: RunningStack) -> None:
    manifest = frozen.manifest
    in_flight = list(manifest["in_flight"])
    assert in_flight, "the frozen store has no refund in flight"
    # A return left awaiting shipment whose ship-by date has passed since the freeze is
    # closed by review's clock once the stack runs (nothing paid); the rest are carried on.
    now = datetime.now(UTC)
    unshipped = {
        refund_id
        for refund_id in in_flight
        if (ship_by := manifest["refunds"][refund_id].get("ship_by"))
        and datetime.fromisoformat(ship_by) <= now
    }
    to_pay = [refund_id for refund_id in in_flight if refund_id not in unshipped]

    # Every refund reads as it was left; an erased customer's data stays erased.
    erased = {(c["tenant"], c["customer_id"]) for c in manifest["erased_customers"]}
    for refund_id, refund in manifest["refunds"].items():
        view = _view(stack, refund_id, frozen.key_of(refund))
        if refund_id not in in_flight:
            assert view["status"] == refund["status"], (refund["kind"], view["status"])
        assert view["amount"] == refund["amount"], refund["kind"]
        if (refund["tenant"], refund["customer_id"]) in erased:
            assert view["personal_data"] == "erased", refund["kind"]

    # The platform key issued by `refunds api-keys create` still works; the revoked one not.
    active, revoked = manifest["api_keys"]["active"], manifest["api_keys"]["revoked"]
    listed = stack.http["intake"].get("/v1/refunds", headers=_bearer(active["key"]))
    assert listed.status_code == 200, listed.text
    theirs = {i for i, r in manifest["refunds"].items() if r["tenant"] == active["tenant"]}
    assert theirs and theirs <= {r["id"] for r in listed.json()["data"]}
    refused = stack.http["intake"].get("/v1/refunds", headers=_bearer(revoked["key"]))
    assert refused.status_code == 401, refused.text

    # The webhook endpoint now points at a receiver of ours; its frozen secret signs.
    endpoint = manifest["webhook_endpoints"]["every_event"]
    platform = _bearer(str(manifest["dev_api_key"]))
    with Receiver() as receiver:
        moved = stack.post(
            "notify", f"/v1/webhook_endpoints/{endpoint['id']}", {"url": receiver.url}, platform
        )
        assert moved.status_code == 200, moved.text

        # The refunds left in flight are decided by people and paid.
        paid = {refund_id: _carry_on(stack, frozen, refund_id) for refund_id in to_pay}
        for refund_id in unshipped:
            key = frozen.key_of(manifest["refunds"][refund_id])
            _until(
                lambda r=refund_id, k=key: _view(stack, r, k)["status"] == "return_not_shipped",
                f"the unshipped return {refund_id} to close",
            )

        # Paid exactly once each at the gateway; nothing frozen was paid again.
        ledger = stack.http["gateway"].get("/ledger").json()["entries"]
        numbers = Counter(entry["merchant_refund_no"] for entry in ledger)
        assert all(count == 1 for count in numbers.values()), numbers.most_common(3)
        assert len(ledger) == manifest["gateway_ledger_entries"] + len(to_pay)
        for view in paid.values():
            entry = next(
                e for e in ledger if e["merchant_refund_no"] == view["payout"]["payout_id"]
            )
            assert entry["amount"] == view["amount"]["amount"]

        # Their webhooks arrived, signed with the secret the endpoint had when frozen.
        def announced() -> set[str]:
            events = [
                Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in receiver.requests
            ]
            return {e["subject"] for e in events if e["type"] == "payout.succeeded.v1"}

        _until(lambda: set(to_pay) <= announced(), "the payouts' webhooks")

    # Stopped as users stop it, the ledgers (old entries and new) verify, read models rebuild.
    stack.stop()
    _assert_rebuilt_and_verified(frozen.data_dir, "--seal")
