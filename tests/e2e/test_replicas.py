"""`refunds dev --replicas 2 [--postgres URL]`: two processes of every service sharing its port;
the README's refund goes to `paid` through the shared ports, and one replica leads each
leased role (refunds_role_active and refunds_role_epoch of every replica)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from refunds.devstack import Ports
from shared.auth import DEV_API_KEY
from shared.contracts import SERVICES
from tests.e2e.conftest import _read_until
from tests.support.factories import wait_until
from tests.support.ports import stack_base
from tests.support.replicas import Leadership

pytestmark = [pytest.mark.e2e]

PER_SERVICE = {
    "intake": ("relay", "ledger_sealer", "checkpoint_signer"),
    "review": ("relay", "sla_clock", "return_deadlines", "carrier_poller", "carrier_subscriber"),
    "payout": ("relay", "executor", "poller"),
    "notify": ("relay", "email_sender", "sms_sender", "webhook_deliverer"),
}
# Roles that must have exactly one leader; ledger sealer and checkpoint signer in every service.
LEASED = {(service, role) for service, roles in PER_SERVICE.items() for role in roles} | {
    (service, role) for service in SERVICES for role in ("ledger_sealer", "checkpoint_signer")
}
ROOT = Path(__file__).resolve().parents[2]
REPLICA_ROW = re.compile(r"^\s+(?P<name>[a-z]+-\d)\s+(?P<url>http://127\.0\.0\.1:\d+)\s+replica")


def readme_refund() -> dict[str, object]:
    """The body of the README's first request ("One refund, from request to paid"), with its
    order paid three days ago and delivered yesterday: its own dates fall out of the
    after-sales window as the calendar moves on, and then a person must decide."""
    section = (ROOT / "README.md").read_text().split("## One refund, from request to paid")[1]
    body = json.loads(section.split("-d '", 1)[1].split("'\n", 1)[0])
    now = datetime.now(UTC)
    body["order"]["paid_at"] = (now - timedelta(days=3)).isoformat()
    body["order"]["delivered_at"] = (now - timedelta(days=1)).isoformat()
    return dict(body)


@pytest.fixture(params=["postgres", "sqlite"])
def replicated_dev(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Ports, str]]:
    """`refunds dev --replicas 2` on PostgreSQL (leases are rows), and on SQLite (file locks)."""
    base = stack_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    # Eight processes share PostgreSQL's 100 connections with the rest of the suite; `refunds
    # dev` passes these on (the user's REFUNDS_* settings reach the services).
    env |= {"REFUNDS_DATABASE_POOL_SIZE": "1", "REFUNDS_DATABASE_MAX_OVERFLOW": "2"}
    cli = Path(sys.executable).with_name("refunds")
    store: list[str] = []
    if request.param == "postgres":
        url, prefix = (
            request.getfixturevalue("postgres_url"),
            request.getfixturevalue("schema_prefix"),
        )
        store = ["--postgres", url, "--schema-prefix", prefix]
    process = subprocess.Popen(
        [
            *(str(cli), "dev", "--replicas", "2", *store),
            *("--data-dir", str(tmp_path), "--base-port", str(base)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        yield Ports.from_base(base), _read_until(process, "Ctrl-C to stop", timeout=120)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        # What the supervisor said after its banner (a replica that died and was started
        # again, with its log's last lines): pytest shows it beside a failure.
        assert process.stdout is not None
        print(process.stdout.read())
        for log in sorted(tmp_path.glob("**/*.log")):
            print(f"--- {log.name}:", *log.read_text(errors="replace").splitlines()[-15:], sep="\n")


def test_two_replicas_of_each_service_share_its_port_and_one_leads_each_role(
    replicated_dev: tuple[Ports, str],
) -> None:
    ports, banner = replicated_dev
    replicas = {
        match["name"]: match["url"]
        for match in map(REPLICA_ROW.match, banner.splitlines())
        if match is not None
    }
    assert sorted(replicas) == sorted(f"{s}-{i}" for s in SERVICES for i in (1, 2)), banner
    # Every replica answers on its own port, as itself.
    for name, url in replicas.items():
        assert httpx.get(url + "/readyz", timeout=5).json()["status"] == "ready", name
        assert f'replica="{name}"' in httpx.get(url + "/metrics", timeout=5).text

    # The README's refund, through intake's shared port.
    intake = httpx.Client(
        base_url=f"http://127.0.0.1:{ports.intake}",
        headers={"Authorization": f"Bearer {DEV_API_KEY}"},
        timeout=10,
    )
    refund = readme_refund()
    created = intake.post("/v1/refunds", json=refund, headers={"Idempotency-Key": "r-1"})
    assert created.status_code == 201, created.text
    refund_id = created.json()["id"]
    # Both replicas answer through the shared port, each with the same view of the refund.
    wait_until(
        lambda: intake.get(f"/v1/refunds/{refund_id}").json()["status"] == "paid",
        60,
        "the README's refund to be paid",
    )
    again = intake.post("/v1/refunds", json=refund, headers={"Idempotency-Key": "r-1"})
    assert again.json()["id"] == refund_id  # replayed, whichever replica answered

    leadership: list[Leadership] = []

    def one_leader_each() -> bool:
        leadership[:] = [Leadership(replicas)]
        return not leadership[0].problems(2, LEASED)

    wait_until(one_leader_each, 30, "one leader per leased role")
    # And it stays so: the followers keep asking and keep being refused.
    later = Leadership(replicas)
    assert later.problems(2, LEASED) == []
    assert {role: later.leaders(role) for role in LEASED} == {
        role: leadership[0].leaders(role) for role in LEASED
    }
    intake.close()
