"""The admin page's payment provider accounts, in-process over the four services: a tenant's
accounts connected (and removed) through payout's own admin API are listed with provider,
methods, what identifies the credentials, who configured them and when, connected or
removed; never a secret. The tenant is chosen like the webhooks section's (a select of the
platforms intake knows, or typed) and each section keeps the other's choice. Only admins
see it; the page speaks zh-CN and en; a payout that does not answer is named, not a 500."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.alipay.dev_keys import ALIPAY_PUBLIC_KEY, APP_PRIVATE_KEY
from sandbox.alipay.dev_keys import dev_account as alipay_account
from sandbox.stripe.dev_keys import DEV_SECRET_KEY, DEV_WEBHOOK_SECRET
from sandbox.stripe.dev_keys import dev_account as stripe_account
from tests.integration.test_console import csrf
from tests.support.console_stack import Stack, console_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with console_stack(tmp_path) as made:
        yield made


def section(page: str, heading_id: str) -> str:
    start = page.index(f'id="{heading_id}"')
    return page[start : page.index("</section>", start)]


def accounts(page: str) -> str:
    return section(page, "provider-accounts")


def connect(stack: Stack, tenant: str, provider: str, body: dict[str, object]) -> None:
    answer = stack.clients["payout"].put(
        f"/v1/admin/tenants/{tenant}/providers/{provider}",
        json=body,
        headers=stack.staff("payout", "admin"),
    )
    assert answer.status_code == 201, answer.text


def rows(page: str) -> dict[str, str]:
    """The accounts table's rows by provider."""
    table = accounts(page)
    found = re.findall(r"<tr[^>]*>\s*<td><code>([a-z]+)</code></td>(.*?)</tr>", table, re.S)
    return dict(found)


def test_a_tenants_connected_and_removed_accounts_are_listed_without_secrets(
    stack: Stack,
) -> None:
    connect(stack, "acme", "stripe", stripe_account("http://127.0.0.1:8060"))
    connect(stack, "acme", "alipay", alipay_account("http://127.0.0.1:8070"))
    removed = stack.clients["payout"].delete(
        "/v1/admin/tenants/acme/providers/alipay", headers=stack.staff("payout", "admin")
    )
    assert removed.status_code == 200, removed.text
    root = stack.browser("root", "/admin")

    unchosen = root.get("/admin")
    assert unchosen.status_code == 200, unchosen.text
    assert '<h2 id="provider-accounts">支付渠道账户</h2>' in unchosen.text
    assert "<table" not in accounts(unchosen.text)  # nothing asked before a tenant is chosen

    page = root.get("/admin", params={"provider_tenant": "acme"})
    assert page.status_code == 200, page.text
    listed = rows(page.text)
    assert set(listed) == {"stripe", "alipay"}
    stripe, alipay = listed["stripe"], listed["alipay"]
    assert "<code>card</code>" in stripe and "<code>alipay</code>" in alipay  # methods
    assert f"<dd>{DEV_SECRET_KEY[-4:]}</dd>" in stripe  # the key's last four, named
    assert "<code>secret_key_last4</code>" in stripe and "<dd>test</dd>" in stripe
    assert "<dd>sha256:" in stripe  # the webhook secret's fingerprint
    assert "<dd>2021000000000001</dd>" in alipay  # the app id
    assert "<td>al</td>" in stripe  # who configured it (payout's token for `al`)
    assert "已连接" in stripe and "移除" not in stripe
    assert "移除" in alipay and "已连接" not in alipay
    assert 'class="sla-late"' in page.text  # the removed account stands out
    for secret in (DEV_SECRET_KEY, DEV_WEBHOOK_SECRET):
        assert secret not in page.text
    for pem in (APP_PRIVATE_KEY, ALIPAY_PUBLIC_KEY):
        body = "".join(pem.strip().splitlines()[1:-1])
        assert body[:40] not in page.text.replace("\n", "")

    nobody = root.get("/admin", params={"provider_tenant": "globex"})
    assert nobody.status_code == 200 and rows(nobody.text) == {}
    assert '<td colspan="6">无。</td>' in accounts(nobody.text)


def test_the_tenant_is_chosen_from_the_platforms_or_typed_and_both_sections_keep_theirs(
    stack: Stack,
) -> None:
    issued = stack.clients["intake"].post(
        "/v1/admin/api-keys",
        json={"tenant": "globex", "label": "test"},
        headers={**stack.staff("intake", "admin"), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert issued.status_code == 201, issued.text
    connect(stack, "globex", "stripe", stripe_account("http://127.0.0.1:8060"))
    connect(stack, "acme", "alipay", alipay_account("http://127.0.0.1:8070"))
    root = stack.browser("root", "/admin")
    page = root.get("/admin").text
    assert '<option value="globex" >globex</option>' in accounts(page)  # intake knows it

    chosen = root.get("/admin", params={"provider_tenant": "globex"}).text
    assert set(rows(chosen)) == {"stripe"}
    assert '<option value="globex" selected>' in accounts(chosen)
    # The webhooks form carries the providers' choice along (and the other way round).
    assert 'name="provider_tenant" value="globex"' in section(chosen, "webhooks")

    # Typed wins over the select (acme's key comes from intake's settings, so is not listed).
    typed = root.get(
        "/admin",
        params={"provider_tenant": "globex", "provider_typed": "acme", "tenant": "globex"},
    ).text
    assert set(rows(typed)) == {"alipay"} and "acme 的账户" in typed
    assert '<option value="acme" selected>' in accounts(typed)
    assert 'type="hidden" name="tenant" value="globex"' in accounts(typed)
    webhooks = section(typed, "webhooks")
    assert '<option value="globex" selected>' in webhooks  # the webhooks' choice is kept

    bad = root.get("/admin", params={"provider_typed": "../payouts"})
    assert bad.status_code == 422  # not a tenant name: refused before payout is asked


def test_only_admins_see_the_accounts(stack: Stack) -> None:
    connect(stack, "acme", "stripe", stripe_account("http://127.0.0.1:8060"))
    for username in ("zhao", "audrey", "wu"):  # finance, auditor, agent: payout lets some read
        browser = stack.browser(username, "/admin")
        page = browser.get("/admin", params={"provider_tenant": "acme"})
        assert page.status_code == 403, (username, page.text)
        assert "secret_key_last4" not in page.text and "provider-accounts" not in page.text
        home = browser.get("/").text
        assert 'href="/admin"' not in home[home.index("<nav") : home.index("</nav>")]


def test_the_accounts_speak_chinese_and_english(stack: Stack) -> None:
    connect(stack, "acme", "stripe", stripe_account("http://127.0.0.1:8060"))
    root = stack.browser("root", "/admin")
    page = root.get("/admin", params={"provider_tenant": "acme"}).text
    zh = accounts(page)
    assert "支付渠道账户" in zh and "已连接" in zh and "配置人" in zh and "acme 的账户" in zh
    assert "显示账户" in zh
    switched = root.post(
        "/language",
        data={"csrf_token": csrf(page), "locale": "en", "next": "/admin?provider_tenant=acme"},
    )
    assert switched.status_code == 200, switched.text
    en = accounts(switched.text)
    assert "Payment provider accounts" in en and "Accounts of acme" in en
    assert "Connected" in en and "Configured by" in en and "Show accounts" in en


def test_payout_not_answering_is_named_and_the_rest_of_the_page_shows(tmp_path: Path) -> None:
    with console_stack(tmp_path, down=frozenset({"payout"})) as stack:
        root = stack.browser("root", "/admin")
        page = root.get("/admin", params={"provider_tenant": "acme"})
        assert page.status_code == 200, page.text
        assert rows(page.text) == {}
        assert 'id="policies"' in page.text  # review's part is still there
        problem = page.text[: page.text.index('id="policies"')]
        assert 'class="problem"' in problem
