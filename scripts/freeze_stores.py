"""Freeze what a deployment of this release keeps, for the upgrade tests of every later release.

    .venv/bin/python scripts/freeze_stores.py --release 0.1.0

Starts the whole stack as users do (`refunds dev`, SQLite, on free ports), drives a realistic
mix of refunds over the public HTTP APIs (scripts/frozen_mix.py; from 0.3.0 then returns under
the example returns policy, scripts/frozen_returns.py), issues and revokes platform
API keys with `refunds api-keys`, registers webhook endpoints, waits until the stack is quiet,
stops it with SIGINT and copies each service's store, the keystore and the gateway's ledger
into tests/fixtures/stores/<release>/ with a MANIFEST.json saying what each refund is.

It also captures one CloudEvent of each integration event type from the four topics into
tests/fixtures/events/<type>.json (scripts/frozen_samples.py): a type's sample is written
once, by the first release that publishes it (its first version), and never replaced; a type
the mix cannot produce is written from its model and marked so in MANIFEST.json there.

To freeze a new release: bump `version` in pyproject.toml, run this with that version, commit
tests/fixtures/stores/<version>/ and any new tests/fixtures/events/*.json. If the mix no longer
runs against the new release's APIs, change the mix, never an older release's fixture.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from frozen_mix import AUDITOR, DEV, ZHAO, Mix, bearer, until  # noqa: E402
from frozen_mix import ROOT as ADMIN  # noqa: E402
from frozen_returns import Returns  # noqa: E402
from frozen_samples import from_models, pick_samples, read_topics, write_samples  # noqa: E402

from refunds.devstack import Ports  # noqa: E402
from sandbox.gateway import DEFAULT_CALLBACK_SECRET, signature_header  # noqa: E402
from shared.auth import DEV_API_KEY, DEV_TENANT  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

SERVICES = ("intake", "review", "payout", "notify")
# What a deployment keeps: each service's store, the shared keystore, the provider's ledger.
KEPT = (*(f"{service}.sqlite" for service in SERVICES), "keystore.sqlite", "gateway-ledger.sqlite")
CLI = Path(sys.executable).with_name("refunds")


def log(message: str) -> None:
    print(f"[freeze {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- the stack, as users run it -----------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("REFUNDS_", "SANDBOX_"))}


class DevStack:
    """`refunds dev --data-dir DIR --base-port N` in a process of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.base = Ports.free_base(24000 + os.getpid() % 100 * 97)
        self.ports = Ports.from_base(self.base)
        self.output: list[str] = []
        self.up = threading.Event()
        command = [str(CLI), "dev", "--data-dir", str(data_dir), "--base-port", str(self.base)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env()
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self.output.append(text)
            if "Ctrl-C to stop" in text:
                self.up.set()

    def wait_up(self, timeout: float = 120) -> None:
        if not self.up.wait(timeout) or self.process.poll() is not None:
            raise RuntimeError("refunds dev did not come up:\n" + "".join(self.output[-40:]))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.of(name)}"

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; every component stops in order and closes its store."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=90)
        if self.process.returncode != 0:
            raise RuntimeError(f"refunds dev exited with {self.process.returncode}")


def cli(*args: str) -> str:
    done = subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=clean_env(), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"refunds {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


# -- before and after the refunds ---------------------------------------------------------------


def issue_keys(data_dir: Path) -> dict[str, dict[str, str]]:
    """One key in use (tenant acme) and one revoked (tenant globex), made by the CLI."""
    where = ("--data-dir", str(data_dir))
    active = cli("api-keys", "create", "--tenant", "acme", "--label", "frozen store", *where)
    revoked = cli("api-keys", "create", "--tenant", "globex", "--label", "left", *where)
    revoked_key = revoked.strip()
    digest = hashlib.sha256(revoked_key.encode()).hexdigest()
    cli("api-keys", "revoke", digest, "--reason", "tenant left", *where)
    return {
        "active": {"tenant": "acme", "key": active.strip()},
        "revoked": {"tenant": "globex", "key": revoked_key},
    }


def publish_policy(mix: Mix) -> str:
    """An admin publishes a policy version of their own (the shipped rules, renamed)."""
    document = mix.get("review", "/v1/policies/current", ADMIN)
    document["version"] = f"{document['version']}-frozen-{mix.tag}"
    document["description"] = "The shipped rules, published by an admin for the frozen store."
    mix.post("review", "/v1/policies", document, ADMIN, 201)
    return str(document["version"])


def register_webhooks(mix: Mix, live: Receiver, gone: Receiver) -> dict[str, dict[str, Any]]:
    """Every event to `live` (its secret rotated, a test event sent); one endpoint whose
    receiver answers 410 (disabled at once); one created and deleted (its secret shredded)."""
    base = "/v1/webhook_endpoints"
    every = {"url": live.url, "event_types": ["*"], "description": "frozen: every event"}
    created = mix.post("notify", base, every, DEV, 201)
    rotate = {"expire_previous_after_seconds": 0}
    rotated = mix.post("notify", f"{base}/{created['id']}/rotate_secret", rotate, DEV)
    mix.post("notify", f"{base}/{created['id']}/test", {}, DEV)
    requested = {
        "url": gone.url,
        "event_types": ["refund.requested.v1"],
        "alert_email": "ops@example.com",
    }
    gone_id = mix.post("notify", base, requested, DEV, 201)["id"]
    tested = f"{base}/{created['id']}/deliveries"
    until(
        lambda: mix.get("notify", tested, DEV)["data"][0]["state"] == "delivered", "the test event"
    )
    live.answer(500)  # the next delivery fails once: the endpoint fails, then recovers
    approvals = {"url": live.url, "event_types": ["review.approved.v1"]}
    deleted = mix.post("notify", base, approvals, DEV, 201)["id"]
    response = mix.http["notify"].delete(f"{base}/{deleted}", headers=DEV)
    response.raise_for_status()
    return {
        "every_event": {"id": created["id"], "secret": rotated["secret"]},
        "gone": {"id": gone_id},
        "deleted": {"id": deleted},
    }


def deliveries(mix: Mix, endpoint_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = mix.get("notify", f"/v1/webhook_endpoints/{endpoint_id}/deliveries", DEV, **params)
        found += page["data"]
        if not page["has_more"]:
            return found
        params["starting_after"] = found[-1]["id"]


def callbacks_refused_and_replayed(mix: Mix) -> None:
    """A forged callback is refused (and recorded); a genuine one sent again is a replay."""
    path = "/v1/gateway/callbacks"
    forged = mix.http["payout"].post(
        path, content=b'{"id":"cb_forged"}', headers={"Gateway-Signature": "t=1,v1=00"}
    )
    if forged.status_code != 401:
        raise RuntimeError(f"a forged callback was answered {forged.status_code}")
    callbacks = mix.http["gateway"].get("/callbacks").json()["callbacks"]
    callback = next(c for c in callbacks if c["state"] == "delivered")
    refund = mix.http["gateway"].get(f"/v1/refunds/{callback['merchant_refund_no']}").json()
    body = json.dumps(
        {
            "id": callback["id"],
            "type": callback["type"],
            "created_at": callback["created_at"],
            "data": refund,
        },
        separators=(",", ":"),
    ).encode()
    signed = signature_header(DEFAULT_CALLBACK_SECRET, int(time.time()), body)
    again = mix.http["payout"].post(
        path,
        content=body,
        headers={"Gateway-Signature": signed, "Content-Type": "application/json"},
    )
    if again.status_code != 409:
        raise RuntimeError(f"a replayed callback was answered {again.status_code}: {again.text}")


def after_the_refunds(mix: Mix, endpoint_id: str, gone_id: str) -> None:
    """Finance reconciles today's settlement report; a delivered webhook is redelivered; the
    endpoints change; callbacks are forged and replayed."""
    callbacks_refused_and_replayed(mix)
    change = {"description": "frozen: every event, for the ERP"}
    mix.post("notify", f"/v1/webhook_endpoints/{endpoint_id}", change, DEV)
    for enabled in (True, False):  # the gone endpoint re-enabled, then disabled by hand
        mix.post("notify", f"/v1/webhook_endpoints/{gone_id}", {"enabled": enabled}, DEV)
    day = datetime.now(UTC).date().isoformat()
    report = mix.http["gateway"].get(f"/settlements/{day}.csv")
    report.raise_for_status()
    mix.post("payout", "/v1/reconciliations", {"day": day, "report": report.text}, ZHAO)
    first = until(
        lambda: [d for d in deliveries(mix, endpoint_id) if d["state"] == "delivered"],
        "a delivered webhook",
    )[-1]
    path = f"/v1/webhook_endpoints/{endpoint_id}/deliveries/{first['id']}/redeliver"
    mix.post("notify", path, {}, DEV)

    def redelivered() -> bool:
        again = next(d for d in deliveries(mix, endpoint_id) if d["id"] == first["id"])
        return again["state"] == "delivered" and len(again["attempts"]) >= 2

    until(redelivered, "the redelivery")


# -- quiet ---------------------------------------------------------------------------------------


def metrics(mix: Mix, service: str) -> dict[str, float]:
    text = mix.http[service].get("/metrics").text
    values: dict[str, float] = {}
    for row in text.splitlines():
        if row.startswith("refunds_") and " " in row:
            name, value = row.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_quiet(mix: Mix, endpoint_id: str, timeout: float = 180) -> None:
    """Nothing left to do: every message and webhook settled, relays and consumers caught
    up, and no store growing for three seconds."""

    def settled() -> bool:
        for refund_id in mix.refunds:
            found = mix.get("notify", "/v1/notifications", AUDITOR, refund_id=refund_id)
            if any(n["status"] == "pending" for n in found["data"]):
                return False
        return all(d["state"] != "pending" for d in deliveries(mix, endpoint_id))

    def idle() -> dict[str, float] | None:
        lags = {}
        for service in SERVICES:
            for name, value in metrics(mix, service).items():
                if name.startswith(("refunds_relay_lag", "refunds_consumer_lag")) and value:
                    return None
                if name.startswith("refunds_events_stored"):
                    lags[f"{service}:{name}"] = value
        return lags

    until(settled, "every message and webhook to settle", timeout)
    before = until(idle, "relays and consumers to catch up", timeout)
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(3)
        now = until(idle, "relays and consumers to catch up", timeout)
        if now == before:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the stores kept growing")
        before = now


# -- the fixture ---------------------------------------------------------------------------------


def copy_stores(data_dir: Path, target: Path) -> dict[str, Any]:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    files: dict[str, Any] = {}
    for name in KEPT:
        source = data_dir / name
        with sqlite3.connect(source) as db:  # fold any write-ahead log into the file
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        shutil.copyfile(source, target / name)
        raw = (target / name).read_bytes()
        files[name] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        with sqlite3.connect(target / name) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master")}
            if "stored_events" in tables:
                count = db.execute("select count(*) from stored_events").fetchone()[0]
                files[name]["events"] = count
                topics = db.execute("select distinct topic from stored_events order by topic")
                files[name]["topics"] = [row[0] for row in topics]
        db.close()
    return files


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def freeze(release: str, out: Path, events: Path, keep: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"freeze-{release}-"))
    data_dir = work / "data"
    live, gone = Receiver().start(), Receiver().start()
    gone.default_status = 410
    stack = DevStack(data_dir)
    mix: Mix | None = None
    try:
        stack.wait_up()
        log(f"refunds dev is up on base port {stack.base} (data in {data_dir})")
        names = ("intake", "review", "payout", "notify", "gateway", "sms", "carrier")
        mix = Mix({name: stack.url(name) for name in names}, release)
        keys = issue_keys(data_dir)
        acme = keys["active"]["key"]
        until(
            lambda: mix.http["intake"].get("/v1/refunds", headers=bearer(acme)).is_success,
            "intake to accept the new key",
        )
        policy = publish_policy(mix)
        endpoints = register_webhooks(mix, live, gone)
        log("keys, policy and webhook endpoints in place; the refunds ...")
        mix.run(acme)
        returns = Returns(mix)
        returns.run()
        after_the_refunds(mix, endpoints["every_event"]["id"], endpoints["gone"]["id"])
        log(f"{len(mix.refunds)} refunds done; waiting until the stack is quiet ...")
        wait_quiet(mix, endpoints["every_event"]["id"])
        statuses = {
            refund_id: mix.status(refund_id, acme if r["tenant"] == "acme" else DEV_API_KEY)
            for refund_id, r in mix.refunds.items()
        }
        ledger = mix.http["gateway"].get("/ledger").json()
        captured = pick_samples(asyncio.run(read_topics(f"127.0.0.1:{stack.ports.broker}")), mix)
        log(f"captured {len(captured)} event types; stopping the stack (SIGINT) ...")
        mix.close()
        stack.stop()
        files = copy_stores(data_dir, out / release)
        write_samples(events, release, captured, from_models(mix, keys), mix)
        for refund_id, status in statuses.items():
            mix.refunds[refund_id]["status"] = status
        manifest = {
            "release": release,
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--", "services", "shared")),
            "frozen_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "made_by": f"scripts/freeze_stores.py --release {release}",
            "dev_tenant": DEV_TENANT,
            "dev_api_key": DEV_API_KEY,
            "api_keys": keys,
            "policy_version": policy,
            "return_policy_version": returns.policy_version,
            "webhook_endpoints": endpoints,
            "refunds": mix.refunds,
            "in_flight": mix.in_flight,
            "erased_customers": [
                {"tenant": r["tenant"], "customer_id": r["customer_id"]}
                for r in mix.refunds.values()
                if r["kind"] == "erased"
            ],
            "gateway_ledger_entries": ledger["count"],
            "files": files,
        }
        (out / release / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"frozen into {out / release}")
    except BaseException:
        print("".join(stack.output[-30:]), file=sys.stderr)
        raise
    finally:
        if mix is not None:
            mix.close()
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGINT)
            stack.process.wait(timeout=90)
        live.stop()
        gone.stop()
        if keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", required=True, help="the release being frozen, e.g. 0.1.0")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "stores")
    parser.add_argument("--events", type=Path, default=ROOT / "tests" / "fixtures" / "events")
    parser.add_argument("--keep", action="store_true", help="keep the stack's work folder")
    args = parser.parse_args(argv)
    freeze(args.release, args.out, args.events, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
