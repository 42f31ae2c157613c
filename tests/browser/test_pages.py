"""Every console page, through the browser, in both languages: the header's switch shows it
in zh-CN and in en (a known label each), axe-core finds no serious or critical violation,
and a screenshot of each is written to data/screenshots/<lang>/<page>.png (or
$REFUNDS_SCREENSHOTS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sandbox.alipay.dev_keys import dev_account as alipay_account
from sandbox.stripe.dev_keys import dev_account as stripe_account
from services.console.vocabulary import BUILT
from services.review.policy_document import load_policy
from tests.browser.support import (
    Console,
    Window,
    screenshot,
    serious_violations,
    sign_in,
    switch_language,
)
from tests.support.factories import refund_body

pytestmark = [pytest.mark.browser]

RETURN_POLICY = Path(__file__).parents[2] / "services" / "review" / "example_return_policy.yaml"
LANGUAGES = ("en", "zh-CN")  # switched to in this order: zh-CN is the default, so en first


@dataclass(frozen=True)
class Shown:
    """A page: who looks at it (None: nobody signed in), where, and a label it shows in each
    language (in its first heading unless `where` names another element)."""

    name: str
    person: str | None
    path: Callable[[dict[str, str]], str]
    labels: dict[str, str]
    where: str = "h1"


PAGES = (
    Shown(
        "signin",
        None,
        lambda _: "/",
        {"zh-CN": "员工请使用公司账号登录。", "en": "Staff sign in"},
        "main",
    ),
    Shown("home", "zhao", lambda _: "/", {"zh-CN": "欢迎", "en": "Welcome"}),
    Shown("queue", "ann", lambda _: "/queue", {"zh-CN": "审核队列", "en": "Review queue"}),
    Shown(
        "case",
        "ann",
        lambda made: f"/cases/{made['case']}",
        {"zh-CN": "可退金额", "en": "Refundable"},
        ".facts",
    ),
    Shown(
        "warehouse",
        "wu",
        lambda _: "/warehouse",
        {"zh-CN": "退回仓库的货品", "en": "Returns to the warehouse"},
    ),
    Shown(
        "audit",
        "audrey",
        lambda made: f"/audit?refund_id={made['paid']}",
        {"zh-CN": "的时间线", "en": "Timeline of"},
        "#timeline",
    ),
    Shown(
        "audit-ledgers",
        "audrey",
        lambda _: "/audit/ledgers",
        {"zh-CN": "完好", "en": "Intact"},
        "#ledger-results",
    ),
    Shown("admin", "root", lambda _: "/admin", {"zh-CN": "系统管理", "en": "Administration"}),
    Shown(  # a tenant's payment provider accounts: one connected, one removed
        "admin-providers",
        "root",
        lambda made: f"/admin?provider_tenant={made['provider_tenant']}",
        {"zh-CN": "支付渠道账户", "en": "Payment provider accounts"},
        "#provider-accounts",
    ),
    Shown(
        "admin-publish",
        "root",
        lambda _: "/admin/policies/new",
        {"zh-CN": "发布新版本", "en": "Publish a new version"},
    ),
    Shown(
        "admin-policy",
        "root",
        lambda made: f"/admin/policies/{made['policy']}",
        {"zh-CN": "政策版本", "en": "Policy version"},
    ),
    Shown(
        "admin-diff",
        "root",
        lambda made: f"/admin/policies/diff?old={made['shipped']}&new={made['policy']}",
        {"zh-CN": "的差异", "en": "Differences between"},
    ),
    Shown("analytics", "zhao", lambda _: "/analytics", {"zh-CN": "统计分析", "en": "Analytics"}),
    Shown(  # a page the person's roles do not open: the refusal page
        "not-yours",
        "ann",
        lambda _: "/warehouse",
        {"zh-CN": "您的角色无权打开此页面。", "en": "Your roles do not open this page."},
        "[role=alert]",
    ),
    Shown(
        "warehouse-return",
        "wu",
        lambda made: f"/warehouse/{made['return']}",
        {"zh-CN": "退货 RMA-", "en": "Return RMA-"},
    ),
    Shown("finance", "zhao", lambda _: "/finance", {"zh-CN": "付款", "en": "Payouts"}),
    Shown(
        "finance-payout",
        "zhao",
        lambda made: f"/finance/payouts/{made['payout']}",
        {"zh-CN": "付款 ", "en": "Payout "},
    ),
    Shown(
        "finance-reconciliation",
        "zhao",
        lambda _: "/finance/reconciliations",
        {"zh-CN": "对账", "en": "Reconciliation"},
    ),
    Shown(
        "finance-claims",
        "zhao",
        lambda _: "/finance/claims",
        {"zh-CN": "追偿", "en": "Recovery claims"},
    ),
)


@pytest.fixture(scope="module")
def made(console: Console) -> dict[str, str]:
    """What the pages show: a case waiting for its two approvals, a paid refund (its timeline
    and payout), two policy versions (the shipped one, then the example with returns), a
    refund whose goods are on their way back and a tenant's provider accounts."""
    case = console.platform.request_refund(250000)
    paid = console.platform.request_refund(11900)
    console.wait_status(case, "in_review")
    payout = console.wait_status(paid, "paid")["payout"]["payout_id"]
    with console.staff("review", "root") as review:
        shipped = review.get("/v1/policies").json()["data"][-1]["version"]
        document = load_policy(RETURN_POLICY).model_dump(mode="json", by_alias=True)
        published = review.post(
            "/v1/policies", json=document, headers={"Idempotency-Key": "browser-returns"}
        )
        assert published.status_code == 201, published.text
    returning = console.platform.request_refund(
        11900, body=refund_body(11900, reason="changed_mind")
    )
    console.wait_status(returning, "awaiting_return")
    # Accounts of a tenant no refund here is of (so no payout is routed to an emulator that
    # `--no-providers` does not start): the admin page lists them.
    with console.staff("payout", "root") as payout_admin:
        accounts = "/v1/admin/tenants/globex/providers"
        for provider, account in (
            ("stripe", stripe_account("http://127.0.0.1:9")),
            ("alipay", alipay_account("http://127.0.0.1:9")),
        ):
            connected = payout_admin.put(f"{accounts}/{provider}", json=account)
            assert connected.status_code == 201, connected.text
        removed = payout_admin.delete(f"{accounts}/alipay")
        assert removed.status_code == 200, removed.text
    return {
        "provider_tenant": "globex",
        "case": case,
        "paid": paid,
        "payout": payout,
        "policy": published.json()["version"],
        "shipped": shipped,
        "return": returning,
    }


@pytest.mark.parametrize("shown", PAGES, ids=[page.name for page in PAGES])
def test_the_page_in_both_languages_is_accessible_and_photographed(
    console: Console, people: Window, made: dict[str, str], shown: Shown
) -> None:
    page = people()
    path = shown.path(made)
    if shown.person:
        sign_in(page, console, shown.person, start=path)
    else:
        page.goto(console.url(path))
    for lang in LANGUAGES:
        switch_language(page, lang)
        expect(page.locator(shown.where).first).to_contain_text(shown.labels[lang])
        assert serious_violations(page) == [], f"{shown.name} in {lang}"
        screenshot(page, lang, shown.name)


def test_every_built_navigation_entry_has_a_page_here() -> None:
    """A page group added to the console without a row above fails here, by name."""
    covered = {"/" + page.name.split("-")[0] for page in PAGES}
    assert set(BUILT) <= covered, sorted(set(BUILT) - covered)
