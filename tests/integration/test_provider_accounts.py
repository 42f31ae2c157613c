"""Payout's provider accounts API in-process, over SQLite and PostgreSQL: a tenant's Stripe,
Alipay and WeChat Pay accounts are connected, rotated, listed without a secret (in the answer
or anywhere in payout's store and the keystore), refused naming the field, configured by
admins only, and removed for good (shredded, routing back to the gateway, callbacks refused);
`refunds providers` drives the same API over HTTP."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from refunds.cli import main
from sandbox.alipay import dev_keys as alipay_keys
from sandbox.stripe.dev_keys import DEV_WEBHOOK_SECRET
from sandbox.stripe.dev_keys import dev_account as stripe_account
from sandbox.stripe.webhooks import signature_header
from sandbox.wechatpay import dev_keys as wechat_keys
from services.payout.accounts import SEALED_FIELD, ProviderAccount, keystore_subject
from services.payout.adapters import GATEWAY, Routes
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.callbacks import RefusedCallback
from services.payout.domain import Payout as DomainPayout
from services.payout.settings import PayoutSettings
from services.payout.tenant_providers import TenantProviders
from shared.keystore import Keystore
from shared.money import Money
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env
from tests.support.sandbox_gateway import serving

SECRET = "provider-accounts-test-secret-0123"
EMULATOR = "http://127.0.0.1:9"  # never called: configuring does not reach the provider


def staff(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims('root', list(roles), 3600), SECRET)}"}


ADMIN, FINANCE, AUDITOR, REVIEWER = (staff(r) for r in ("admin", "finance", "auditor", "reviewer"))


def dev_account(provider: str) -> dict[str, Any]:
    return {
        "stripe": stripe_account,
        "alipay": alipay_keys.dev_account,
        "wechatpay": wechat_keys.dev_account,
    }[provider](EMULATOR)


def _pem_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM: any one of them in clear would leak the key."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


# What must never appear: each secret, and every line of each private key.
SECRETS = {
    "stripe": [dev_account("stripe")["secret_key"], DEV_WEBHOOK_SECRET],
    "alipay": _pem_lines(alipay_keys.APP_PRIVATE_KEY),
    "wechatpay": [wechat_keys.APIV3_KEY, *_pem_lines(wechat_keys.MERCHANT_PRIVATE_KEY)],
}
PROVIDERS = tuple(SECRETS)


@dataclass
class Payout:
    client: TestClient
    app: PayoutApplication
    providers: TenantProviders
    keystore: Keystore
    dump: Any  # () -> str: every row of payout's store and the keystore, as text
    tenant: str

    def url(self, provider: str = "") -> str:
        base = f"/v1/admin/tenants/{self.tenant}/providers"
        return f"{base}/{provider}" if provider else base

    def put(self, provider: str, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
        return self.client.put(self.url(provider), json=body, headers=headers)

    def listing(self, headers: dict[str, str] = AUDITOR) -> list[dict[str, Any]]:
        answer = self.client.get(self.url(), headers=headers)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])


def _sqlite_dump(*paths: Path) -> str:
    texts = []
    for path in paths:
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                texts += [repr(row) for row in db.execute(f'SELECT * FROM "{table}"')]  # noqa: S608
    return _decoded("\n".join(texts))


def _postgres_dump(url: str, *schemas: str) -> str:
    texts = []
    with psycopg.connect(url) as conn:
        for schema in schemas:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
            for (table,) in tables:
                rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()  # noqa: S608
                texts += [repr(tuple(_text(v) for v in row)) for row in rows]
    return "\n".join(texts)


def _text(value: Any) -> Any:
    return (
        bytes(value).decode("utf-8", "replace") if isinstance(value, memoryview | bytes) else value
    )


def _decoded(text: str) -> str:
    # SQLite hands bytes back; repr() escapes them, so decode the event states too.
    return text.encode().decode("unicode_escape", "replace")


@pytest.fixture(params=["sqlite", "postgres"])
def payout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Payout]:
    options: dict[str, Any] = {}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        url = request.getfixturevalue("postgres_url")
        options = {"database_url": url, "database_schema": f"{prefix}_payout"}
    settings = PayoutSettings(env="test", data_dir=tmp_path, jwt_secret=SECRET, **options)
    app = PayoutApplication(env=store_env(settings, "payout"))
    http = http_api(app, settings)

    def dump() -> str:
        if request.param == "sqlite":
            return _sqlite_dump(tmp_path / "payout.sqlite", tmp_path / "keystore.sqlite")
        return _postgres_dump(url, f"{prefix}_payout", f"{prefix}_keystore")

    tenant = f"acme-{uuid.uuid4().hex[:6]}"
    try:
        with TestClient(http) as client:
            providers = http.state.tenant_providers
            yield Payout(client, app, providers, providers.keystore, dump, tenant)
    finally:
        app.close()


# -- connecting, rotating, listing --------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_connects_rotates_and_lists_no_secret(payout: Payout, provider: str) -> None:
    account = dev_account(provider)
    first = payout.put(provider, account)
    assert first.status_code == 201, first.text
    rotated = dict(account)
    if provider == "stripe":  # a second signing secret, as during Stripe's secret roll
        rotated["webhook_secrets"] = [DEV_WEBHOOK_SECRET, "whsec_" + "rolled" * 6]
    again = payout.put(provider, rotated)
    assert again.status_code == 200, again.text

    listed = payout.listing()
    (entry,) = listed
    assert entry["provider"] == provider and entry["active"] is True
    assert entry["configured_by"] == "root" and entry["summary"]
    assert payout.listing(FINANCE) == listed
    answers = first.text + again.text + json.dumps(listed)
    stored = payout.dump()
    # The dump does hold payout's events, readable: the summary's api_base is there in clear.
    assert ProviderAccount.__name__ in stored and EMULATOR in stored
    for secret in SECRETS[provider] + (["rolled" * 6] if provider == "stripe" else []):
        assert secret not in answers
        assert secret not in stored, f"a {provider} secret is stored in clear"
    # What is stored opens to what was sent last.
    sealed = payout.providers.account(payout.tenant, provider)
    assert sealed is not None and sealed.sealed is not None
    opened = payout.keystore.unseal(sealed.sealed, field=SEALED_FIELD)
    assert opened is not None and json.loads(opened) == rotated


# -- refusals ---------------------------------------------------------------------------------

ALIPAY_SWAPPED = {"alipay_public_key": alipay_keys.APP_PUBLIC_KEY}
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("stripe", {"secret_key": "pk_test_" + "x" * 24}, "secret_key"),
    ("stripe", {"secret_key": "not-a-key"}, "secret_key"),
    ("stripe", {"webhook_secrets": None}, "webhook_secrets"),
    ("stripe", {"webhook_secrets": []}, "webhook_secrets"),
    ("alipay", {"app_private_key": "not a key"}, "app_private_key"),
    ("alipay", {"app_public_key": alipay_keys.ALIPAY_PUBLIC_KEY}, "app_public_key"),
    ("alipay", ALIPAY_SWAPPED, "alipay_public_key"),
    ("alipay", {"app_id": "2021"}, "app_id"),
    (
        "wechatpay",
        {"merchant_private_key": "-----BEGIN PRIVATE KEY-----\nxx"},
        "merchant_private_key",
    ),
    (
        "wechatpay",
        {"merchant_certificate": wechat_keys.PLATFORM_CERTIFICATE},
        "merchant_certificate",
    ),
    ("wechatpay", {"apiv3_key": "too-short"}, "apiv3_key"),
]


@pytest.mark.parametrize(("provider", "change", "field"), BAD, ids=[f"{p}-{f}" for p, _, f in BAD])
def test_bad_configuration_is_a_422_naming_the_field_and_stores_nothing(
    payout: Payout, provider: str, change: dict[str, Any], field: str
) -> None:
    body = dev_account(provider) | change
    body = {k: v for k, v in body.items() if v is not None}  # None: the field is left out
    answer = payout.put(provider, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in json.dumps(answer.json()["errors"]), answer.text
    assert not [secret for secret in SECRETS[provider] if secret in answer.text]  # not echoed
    assert payout.listing() == []
    assert not payout.keystore.knows(keystore_subject(payout.tenant, provider))


def test_an_unknown_provider_is_a_404_and_stores_nothing(payout: Payout) -> None:
    answer = payout.put("paypal", dev_account("stripe"))
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "stripe" in answer.json()["detail"]  # it names the known ones
    assert payout.client.delete(payout.url("paypal"), headers=ADMIN).status_code == 404
    assert payout.listing() == []


def test_only_admins_configure_finance_and_auditors_read(payout: Payout) -> None:
    for headers in (FINANCE, AUDITOR, REVIEWER):
        assert payout.put("stripe", dev_account("stripe"), headers).status_code == 403
    assert payout.client.put(payout.url("stripe"), json=dev_account("stripe")).status_code == 401
    assert payout.listing() == []
    assert payout.put("stripe", dev_account("stripe")).status_code == 201
    for headers in (FINANCE, AUDITOR):
        assert len(payout.listing(headers)) == 1
    assert payout.client.get(payout.url(), headers=REVIEWER).status_code == 403
    known = payout.client.get("/v1/admin/providers", headers=AUDITOR)
    assert known.status_code == 200 and {p["name"] for p in known.json()["data"]} == set(PROVIDERS)
    for headers in (FINANCE, AUDITOR):
        assert payout.client.delete(payout.url("stripe"), headers=headers).status_code == 403
    assert payout.listing()[0]["active"] is True


# -- removal ----------------------------------------------------------------------------------


class _Unused:
    async def refund(self, order: Any) -> Any:
        raise AssertionError("not called")

    async def query(self, order: Any) -> Any:
        raise AssertionError("not called")


def test_removing_an_account_shreds_it_and_routes_back_to_the_gateway(payout: Payout) -> None:
    for provider in PROVIDERS:
        assert payout.put(provider, dev_account(provider)).status_code == 201
    routes = Routes(_Unused(), _Unused(), tenants=payout.providers)
    assert routes.provider_for(payout.tenant, "card") == "stripe"
    sealed = payout.providers.account(payout.tenant, "stripe")
    assert sealed is not None and sealed.sealed is not None

    removed = payout.client.delete(payout.url("stripe"), headers=ADMIN)
    assert removed.status_code == 200, removed.text
    assert removed.json()["active"] is False
    # Every sealed copy of its credentials is gone: the stored value no longer opens.
    assert payout.keystore.unseal(sealed.sealed, field=SEALED_FIELD, fresh=True) is None
    assert routes.provider_for(payout.tenant, "card") == GATEWAY
    assert routes.provider_for(payout.tenant, "alipay") == "alipay"  # the others stay
    states = {a["provider"]: a["active"] for a in payout.listing()}
    assert states == {"stripe": False, "alipay": True, "wechatpay": True}
    again = payout.client.delete(payout.url("stripe"), headers=ADMIN)
    assert again.status_code == 404

    # A webhook genuinely signed with the removed account's secret: refused, unknown key.
    body = json.dumps({"id": "evt_1", "type": "refund.updated", "data": {"object": {}}}).encode()
    signed = signature_header((DEV_WEBHOOK_SECRET,), int(time.time()), body)
    answer = payout.client.post(
        f"/v1/providers/stripe/{payout.tenant}/callbacks",
        content=body,
        headers={"Stripe-Signature": signed, "Content-Type": "application/json"},
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["type"].endswith("callback-unknown-key"), answer.text
    refused = [e for e in _events(payout.app) if isinstance(e, RefusedCallback.Refused)]  # type: ignore[attr-defined]
    assert [(e.reason, e.source) for e in refused] == [("unknown-key", f"stripe/{payout.tenant}")]

    # Connecting it again works, with a new key.
    assert payout.put("stripe", dev_account("stripe")).status_code == 200
    assert routes.provider_for(payout.tenant, "card") == "stripe"


def test_an_account_with_a_refund_in_flight_is_not_removed(payout: Payout) -> None:
    """Without the account payout could not ask about a refund sent there: 409 until it
    settles, and nothing changes meanwhile."""
    assert payout.put("stripe", dev_account("stripe")).status_code == 201
    approval = f"approval-{uuid.uuid4().hex}"
    sent = DomainPayout(
        approval_id=approval,
        refund_id=f"rf_{uuid.uuid4().hex}",
        tenant=payout.tenant,
        amount=Money(12900, "CNY"),
        method="card",
        payment_reference="pi_3Qinflight",
        causation_id=approval,
        payment_currency=None,
    )
    payout.app.save(sent)
    payout.app.record_dispatch(sent.id, datetime.now(UTC), "stripe")
    refused = payout.client.delete(payout.url("stripe"), headers=ADMIN)
    assert refused.status_code == 409, refused.text
    assert sent.number in refused.json()["detail"]
    assert payout.listing()[0]["active"] is True
    account = payout.providers.account(payout.tenant, "stripe")
    assert account is not None and account.sealed is not None
    assert payout.keystore.unseal(account.sealed, field=SEALED_FIELD, fresh=True) is not None

    payout.app.record_success(sent.id, "re_1", datetime.now(UTC))
    assert payout.client.delete(payout.url("stripe"), headers=ADMIN).status_code == 200


def _events(app: PayoutApplication) -> list[Any]:
    return [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 10_000)]


# -- the CLI ------------------------------------------------------------------------------------


def test_the_cli_sets_lists_and_removes_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("REFUNDS_JWT_SECRET", "REFUNDS_ENV"):
        monkeypatch.delenv(name, raising=False)
    options: dict[str, Any] = {"jwt_secret": SECRET}
    settings = PayoutSettings(env="test", data_dir=tmp_path, **options)
    app = PayoutApplication(env=store_env(settings, "payout"))
    admin = encode(staff_claims("root", ["admin"], 600), SECRET)
    finance = encode(staff_claims("zhao", ["finance"], 600), SECRET)
    account = tmp_path / "wechatpay.json"
    account.write_text(json.dumps(dev_account("wechatpay")))
    key = tmp_path / "stripe.key"
    key.write_text(dev_account("stripe")["secret_key"])
    try:
        with serving(http_api(app, settings)) as url:
            common = ["--url", url, "--token", admin]
            assert main(["providers", "known", *common]) == 0
            known = capsys.readouterr().out
            assert all(name in known for name in PROVIDERS) and "secret_key*" in known

            stripe = [
                "--set",
                f"secret_key=@{key}",
                "--set",
                f'webhook_secrets=["{DEV_WEBHOOK_SECRET}"]',
            ]
            assert main(["providers", "set", "stripe", "--tenant", "acme", *stripe, *common]) == 0
            assert (
                main(
                    [
                        "providers",
                        "set",
                        "wechatpay",
                        "--tenant",
                        "acme",
                        "--file",
                        str(account),
                        *common,
                    ]
                )
                == 0
            )
            said = capsys.readouterr().out
            assert "Connected acme's stripe account" in said and "mchid=1900000109" in said
            assert main(["providers", "list", "--tenant", "acme", *common]) == 0
            listed = capsys.readouterr().out
            assert "stripe" in listed and "wechatpay" in listed and "connected" in listed
            for secret in SECRETS["stripe"] + SECRETS["wechatpay"]:
                assert secret not in said + listed

            # Refusals: exit 2 and the problem on stderr, naming the field.
            bad = ["--set", "secret_key=nope", "--set", f'webhook_secrets=["{DEV_WEBHOOK_SECRET}"]']
            assert main(["providers", "set", "stripe", "--tenant", "beta", *bad, *common]) == 2
            assert "secret_key" in capsys.readouterr().err
            as_finance = ["--url", url, "--token", finance]
            assert (
                main(["providers", "set", "stripe", "--tenant", "beta", *stripe, *as_finance]) == 2
            )
            capsys.readouterr()

            assert main(["providers", "remove", "stripe", "--tenant", "acme", *common]) == 0
            assert "its credentials are gone" in capsys.readouterr().out
            assert main(["providers", "list", "--tenant", "acme", "--json", *common]) == 0
            states = {
                a["provider"]: a["active"] for a in json.loads(capsys.readouterr().out)["data"]
            }
            assert states == {"stripe": False, "wechatpay": True}
            assert main(["providers", "remove", "stripe", "--tenant", "acme", *common]) == 2
    finally:
        app.close()


# -- two admins at once ---------------------------------------------------------------------------


@pytest.mark.parametrize("first_exists", [False, True])
def test_two_admins_configuring_at_once_both_get_an_answer_and_the_last_wins(
    payout: Payout, monkeypatch: pytest.MonkeyPatch, first_exists: bool
) -> None:
    """The other admin's save lands between our read and our save (connecting a new account,
    or rotating one): ours is applied on top of theirs, never a 500."""
    if first_exists:
        assert payout.put("stripe", dev_account("stripe")).status_code == 201
    providers = payout.providers
    read = providers.account
    theirs = dev_account("stripe") | {"webhook_secrets": ["whsec_" + "theirs" * 5]}
    stale: list[Any] = []

    def read_then_lose_the_race(tenant: str, provider: str) -> Any:
        found = read(tenant, provider)
        if not stale:  # the first read only: the other admin saves right after it
            stale.append(found)
            monkeypatch.setattr(providers, "account", read)
            providers.configure(tenant, provider, theirs, actor="other")
        return found

    monkeypatch.setattr(providers, "account", read_then_lose_the_race)
    ours = dev_account("stripe") | {"webhook_secrets": ["whsec_" + "oursxx" * 5]}
    answer = payout.put("stripe", ours)
    assert answer.status_code == 200, answer.text  # theirs created it (or rotated it) first
    account = providers.account(payout.tenant, "stripe")
    assert account is not None and account.sealed is not None
    opened = payout.keystore.unseal(account.sealed, field=SEALED_FIELD)
    assert opened is not None and json.loads(opened) == ours
    assert account.version == (3 if first_exists else 2)
