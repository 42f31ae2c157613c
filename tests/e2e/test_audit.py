"""An auditor's day on the README's stack: one refund's whole story, verification, rebuild.

The story refund goes through an evidence request, a rejection, an appeal, two
approvals, a payout the provider closes and a retry by finance. Its timeline
(over intake's HTTP API and the CLI) must hold every step, causes before
effects; the four ledgers must verify; and after a few hundred more refunds a
rebuild from zero must equal the live read models.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from refunds.devstack import Ports
from shared import staff_tokens as jwt
from tests.e2e.support import Platform
from tests.support.factories import refund_body

pytestmark = [pytest.mark.e2e]

MORE_REFUNDS = 200


def _staff(sub: str, role: str) -> dict[str, str]:
    # Minted when the module is collected, which can be a quarter of an hour before its test
    # runs in a busy suite: valid for an hour, as the other modules' staff tokens.
    token = jwt.encode(jwt.staff_claims(sub, [role], 3600), jwt.DEV_JWT_SECRET)
    return {"Authorization": f"Bearer {token}"}


ANN, BOB = _staff("ann", "reviewer"), _staff("bob", "reviewer")
WANG, ZHAO = _staff("wang", "senior_reviewer"), _staff("zhao", "finance")


def _until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _post(client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    response = client.post(
        path, json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code in (200, 201), f"{path}: {response.text}"


def _status(platform: Platform, refund_id: str, wanted: str) -> bool:
    return bool(platform.refund(refund_id)["status"] == wanted)


def _walk_the_story(platform: Platform, ports: Ports) -> str:
    review = httpx.Client(base_url=f"http://127.0.0.1:{ports.review}", timeout=10)
    payout = httpx.Client(base_url=f"http://127.0.0.1:{ports.payout}", timeout=10)
    body = refund_body(80000)  # above the automatic limit: a person decides
    body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    refund_id = platform.request_refund(80000, body=body)
    _until(lambda: _status(platform, refund_id, "in_review"), "the case to open")
    case = f"/v1/cases/{refund_id}"
    evidence = {"missing": ["photo of the stain"], "message": "Please add a close-up photo."}
    _post(review, f"{case}/request-evidence", evidence, ANN)
    _until(lambda: _status(platform, refund_id, "awaiting_evidence"), "the evidence request")
    more = {"evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/2.jpg"}]}
    _post(platform.intake, f"/v1/refunds/{refund_id}/evidence", more, {})
    _until(
        lambda: review.get(case, headers=ANN).json()["state"] == "pending",
        "review to receive the evidence",
    )
    rejection = {
        "reason_code": "no_defect_found",
        "explanation": {"zh-CN": "未发现质量问题。", "en": "We found no defect."},
    }
    _post(review, f"{case}/reject", rejection, ANN)
    _until(lambda: _status(platform, refund_id, "rejected"), "the rejection")
    appeal = {"statement": "The stain was there on delivery; see the unboxing video."}
    _post(platform.intake, f"/v1/refunds/{refund_id}/appeal", appeal, {})
    _until(
        lambda: review.get(case, headers=ANN).json()["round"] == 2, "the appeal to reopen the case"
    )
    platform.gateway.post("/control", json={"close_next": 1}).raise_for_status()
    approval = {"amount": {"amount": 80000, "currency": "CNY"}, "note": "unboxing video checked"}
    _post(review, f"{case}/approve", approval, BOB)  # an appeal needs two, and not ann
    _post(review, f"{case}/approve", approval, WANG)
    _until(lambda: _status(platform, refund_id, "payout_failed"), "the provider to close it", 90)
    payout_id = platform.refund(refund_id)["payout"]["payout_id"]
    _post(payout, f"/v1/payouts/{payout_id}/retry", {}, ZHAO)
    _until(lambda: _status(platform, refund_id, "paid"), "the retried payout", 90)
    return refund_id


# The ledgers' own view (the CLI): each service's domain events.
LEDGER_STORY = [
    ("intake", "RefundRequest.Requested"),
    ("review", "ReviewCase.Opened"),
    ("review", "ReviewCase.EvidenceRequested"),
    ("intake", "RefundRequest.EvidenceRequested"),
    ("intake", "RefundRequest.EvidenceAdded"),
    ("review", "ReviewCase.EvidenceReceived"),
    ("review", "ReviewCase.Rejected"),
    ("intake", "RefundRequest.Rejected"),
    ("intake", "RefundRequest.Appealed"),
    ("review", "ReviewCase.Appealed"),
    ("review", "ReviewCase.ApprovalAdded"),
    ("review", "ReviewCase.ApprovalAdded"),
    ("review", "ReviewCase.Approved"),
    ("payout", "Payout.Requested"),
    ("payout", "Payout.Failed"),
    ("intake", "RefundRequest.PayoutFailed"),
    ("payout", "Payout.RetryRequested"),
    ("payout", "Payout.Succeeded"),
    ("intake", "RefundRequest.PayoutSucceeded"),
]
# The platform's view (HTTP): intake's records of each step, between the peers' own entries.
HTTP_STORY = [
    ("intake", "refund.requested"),
    ("review", "ReviewCase.Opened"),
    ("review", "ReviewCase.EvidenceRequested"),
    ("review", "review.evidence_requested"),
    ("intake", "refund.evidence_added"),
    ("review", "ReviewCase.EvidenceReceived"),
    ("review", "ReviewCase.Rejected"),
    ("review", "review.rejected"),
    ("intake", "refund.appealed"),
    ("review", "ReviewCase.Appealed"),
    ("review", "ReviewCase.ApprovalAdded"),
    ("review", "ReviewCase.ApprovalAdded"),
    ("review", "ReviewCase.Approved"),  # intake's record of it may come after payout's reaction
    ("payout", "Payout.Requested"),
    ("payout", "Payout.Failed"),
    ("payout", "payout.failed"),
    ("payout", "Payout.RetryRequested"),
    ("payout", "Payout.Succeeded"),
    ("payout", "payout.succeeded"),
]


def _from_http(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of GET /v1/refunds/{id}/events in the CLI's JSON Lines shape."""
    return {
        "service": entry["source"],
        "type": entry["type"],
        "event_id": entry["id"],
        "causation_id": entry["causation_id"],
        "actor": entry["actor"],
        "summary": entry["data"],
    }


def _assert_story(moments: list[dict[str, Any]], story: list[tuple[str, str]]) -> None:
    steps = [(m["service"], m["type"]) for m in moments]
    at = 0
    for wanted in story:  # in this order, other moments in between
        assert wanted in steps[at:], f"{wanted} missing after {steps[at - 1] if at else 'start'}"
        at = steps.index(wanted, at) + 1
    index = {m["event_id"]: i for i, m in enumerate(moments)}
    for i, m in enumerate(moments):  # every cause comes before its effect
        cause = index.get(m["causation_id"] or "")
        assert cause is None or cause < i, f"{m['type']} before its cause"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for m in moments:
        by_type.setdefault(m["type"], []).append(m)
    assert by_type["ReviewCase.EvidenceRequested"][0]["actor"] == "staff:ann"
    assert by_type["ReviewCase.Rejected"][0]["actor"] == "staff:ann"
    assert {m["actor"] for m in by_type["ReviewCase.ApprovalAdded"]} == {"staff:bob", "staff:wang"}
    approved = by_type["ReviewCase.Approved"][0]["summary"]
    assert approved["policy_version"] and approved["rule"]
    assert by_type["Payout.RetryRequested"][0]["actor"] == "staff:zhao"
    assert by_type["Payout.Succeeded"][0]["summary"]["provider_reference"].startswith("gw_")
    requested = by_type.get("RefundRequest.Requested") or by_type["refund.requested"]
    assert requested[0]["actor"] == "tenant:dev-platform"  # the key `refunds dev` prints
    sent = {m["summary"].get("step") for m in by_type.get("Correspondence.MessageSent", [])}
    # In review when opened, again when the evidence came (#2), again on appeal (#3).
    story = {"received", "in_review", "evidence_requested", "in_review#2", "rejected"}
    story |= {"in_review#3", "approved", "payout_failed", "paid"}
    assert story <= sent, sent


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("refunds")
    return subprocess.run(
        [str(cli), "audit", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_refunds_story_is_complete_the_ledgers_verify_and_rebuild_equals_live(
    refunds_dev: tuple[Platform, subprocess.Popen[str], Ports], tmp_path: Path
) -> None:
    platform, _, ports = refunds_dev
    refund_id = _walk_the_story(platform, ports)

    # Over HTTP, with the platform's key: all four services answered, the last message sent.
    def told_paid() -> dict[str, Any] | None:
        response = platform.intake.get(f"/v1/refunds/{refund_id}/events")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        steps = {e["data"].get("step") for e in found["data"] if e["source"] == "notify"}
        return found if "paid" in steps else None

    timeline = _until(told_paid, "notify to tell the customer it is paid")
    assert timeline["incomplete"] == []
    assert ("review", "review.approved") in {(e["source"], e["type"]) for e in timeline["data"]}
    _assert_story([_from_http(entry) for entry in timeline["data"]], HTTP_STORY)
    done = _cli("timeline", refund_id, "--format", "jsonl", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    from_cli = [json.loads(line) for line in done.stdout.splitlines()]
    _assert_story(from_cli, LEDGER_STORY)
    table = _cli("timeline", refund_id, data_dir=tmp_path).stdout
    assert "ReviewCase.ApprovalAdded" in table and "staff:wang" in table

    # A few hundred more refunds, then every read model rebuilt from zero equals the live one.
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: platform.request_refund(11900), range(MORE_REFUNDS)))
    finals = platform.wait_final(ids, timeout=240)
    assert {final["status"] for final in finals.values()} == {"paid"}
    rebuilt = _cli("rebuild", data_dir=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    intake_row = next(line for line in rebuilt.stdout.splitlines() if "intake/refund_index" in line)
    assert int(intake_row.split()[3]) == MORE_REFUNDS + 1  # rows: every refund, none lost
    assert all(line.split()[-1] == "0" for line in rebuilt.stdout.splitlines()[1:] if "/" in line)

    # The story's customer asks to be forgotten: their key goes, the books stay.
    customer = platform.refund(refund_id)["customer_id"]
    admin = _staff("root", "admin")
    erased = platform.intake.post(
        f"/v1/customers/{customer}/erase",
        json={"tenant": "dev-platform", "reason": "customer request"},
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert erased.status_code == 200, erased.text
    after = platform.refund(refund_id)
    assert after["customer"]["email"] == "[erased]"
    assert after["status"] == "paid" and after["amount"] == {"amount": 80000, "currency": "CNY"}
    for store in tmp_path.glob("*.sqlite"):  # the services' stores and the keystore, raw
        raw = store.read_bytes()
        assert b"li.wei@example.com" not in raw and b"8613800000000" not in raw, store.name

    verified = _cli("verify", "--seal", data_dir=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count(" ok ") == 4, verified.stdout

    # Any range of a ledger exports as JSON Lines and CSV, the same entries in both.
    lines = _cli("export", "intake", "--after", "2", "--until", "40", data_dir=tmp_path)
    exported = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [e["position"] for e in exported] == list(range(3, 41))
    assert all(e["hash"] and e["actor"] for e in exported)
    as_csv = _cli(
        "export", "intake", "--after", "2", "--until", "40", "--format", "csv", data_dir=tmp_path
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [int(r["position"]) for r in rows] == list(range(3, 41))
    assert [r["hash"] for r in rows] == [e["hash"] for e in exported]
