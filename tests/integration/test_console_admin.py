"""The admin's console pages: policy versions (read, compared as a table, published through a
form that names review's refusal per field and keeps the text), and platform API keys (an
issued key shown once, listed by prefix only, revoked); only admins get the pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.support.console_stack import Stack, console_stack, hidden


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with console_stack(tmp_path) as made:
        yield made


def textarea(page: str) -> str:
    found = re.search(r'<textarea id="document" name="document"[^>]*>(.*?)</textarea>', page, re.S)
    assert found is not None, "no policy textarea on the page"
    return found.group(1).replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&")


def versions(stack: Stack) -> list[str]:
    answer = stack.clients["review"].get("/v1/policies", headers=stack.staff("review", "admin"))
    assert answer.status_code == 200, answer.text
    return [v["version"] for v in answer.json()["data"]]


def test_a_mistake_is_named_and_kept_then_the_fixed_policy_publishes_once(stack: Stack) -> None:
    root = stack.browser("root", "/admin")
    overview = root.get("/admin")
    assert overview.status_code == 200, overview.text
    shipped = versions(stack)
    assert f'href="/admin/policies/{shipped[0]}"' in overview.text

    form = root.get("/admin/policies/new").text
    document = yaml.safe_load(textarea(form))
    document["version"] = "2026-12-01"
    document["auto_approval"]["max_risk"] = "lots"  # not a number
    wrong = yaml.safe_dump(document, sort_keys=True, allow_unicode=True)
    fields = hidden(form, "/admin/policies")
    refused = root.post("/admin/policies", data={**fields, "document": wrong})
    assert refused.status_code == 422, refused.text
    assert "<code>auto_approval.max_risk</code>" in refused.text  # the field, named
    assert "max_risk: lots" in textarea(refused.text)  # the text kept for fixing
    assert versions(stack) == shipped  # nothing published

    unreadable = root.post("/admin/policies", data={**fields, "document": "version: [unclosed"})
    assert unreadable.status_code == 422 and "<code>document</code>" in unreadable.text
    assert "version: [unclosed" in unreadable.text

    document["auto_approval"]["max_risk"] = 25
    fixed = {**hidden(refused.text, "/admin/policies"), "document": yaml.safe_dump(document)}
    published = root.post("/admin/policies", data=fixed)
    assert published.status_code == 200, published.text
    assert str(published.url).endswith("/admin/policies/2026-12-01")
    assert "max_risk: 25" in published.text
    again = root.post("/admin/policies", data=fixed)  # a double submit: the same answer
    assert again.status_code == 200, again.text
    assert versions(stack) == [*shipped, "2026-12-01"]
    # A version typed as a bare date (YAML reads a date) is sent as the text it was written as.
    bare = yaml.safe_dump({**document, "version": "2026-12-02"}).replace(
        "version: '2026-12-02'", "version: 2026-12-02"
    )
    assert "version: 2026-12-02\n" in bare
    form_again = hidden(root.get("/admin/policies/new").text, "/admin/policies")
    dated = root.post("/admin/policies", data={**form_again, "document": bare})
    assert dated.status_code == 200 and str(dated.url).endswith("/admin/policies/2026-12-02")

    diff = root.get("/admin/policies/diff", params={"old": shipped[0], "new": "2026-12-01"})
    assert diff.status_code == 200, diff.text
    assert '<table class="diff">' in diff.text and '<th scope="col">' in diff.text
    assert "max_risk: 30" in diff.text and "max_risk: 25" in diff.text
    assert "version: &#39;2026-12-01&#39;" in diff.text or "version: 2026-12-01" in diff.text
    same = root.get("/admin/policies/diff", params={"old": shipped[0], "new": shipped[0]})
    assert "两个版本相同。" in same.text
    unknown = root.get("/admin/policies/nope-1")
    assert unknown.status_code == 404


def test_an_issued_key_is_shown_once_listed_by_prefix_and_revoked(stack: Stack) -> None:
    root = stack.browser("root", "/admin")
    page = root.get("/admin").text
    fields = hidden(page, "/admin/keys")
    issued = root.post("/admin/keys", data={**fields, "tenant": "globex", "label": "checkout"})
    assert issued.status_code == 201, issued.text
    assert issued.headers["cache-control"] == "no-store"
    found = re.search(r'<p class="secret" id="issued-key">(sk_[A-Za-z0-9_-]+)</p>', issued.text)
    assert found is not None, issued.text
    key = found.group(1)
    works = stack.clients["intake"].get("/v1/refunds", headers={"Authorization": f"Bearer {key}"})
    assert works.status_code == 200, works.text  # a real key of globex

    again = root.post("/admin/keys", data={**fields, "tenant": "globex", "label": "checkout"})
    assert again.status_code == 409 and key not in again.text  # never shown twice
    listed = root.get("/admin").text
    assert key not in listed and f"<code>{key[:12]}</code>" in listed
    keys = stack.clients["intake"].get("/v1/admin/api-keys", headers=stack.staff("intake", "admin"))
    assert [k["tenant"] for k in keys.json()["data"]].count("globex") == 1

    bad = root.post("/admin/keys", data={**hidden(listed, "/admin/keys"), "tenant": "Bad Name!"})
    assert bad.status_code == 422 and "<code>tenant</code>" in bad.text
    assert 'value="Bad Name!"' in bad.text  # kept for fixing

    revoke = f"/admin/keys/{key[:12]}/revoke"
    gone = root.post(revoke, data={**hidden(listed, revoke), "reason": "leaked"})
    assert gone.status_code == 200 and str(gone.url).endswith("/admin")
    assert f'action="{revoke}"' not in gone.text
    # Revoked in the store, and refused by intake from the very next request (the key was
    # cached as live by the request above: revoking drops it from the cache).
    refused = stack.clients["intake"].get("/v1/refunds", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401, refused.text
    keys = stack.clients["intake"].get("/v1/admin/api-keys", headers=stack.staff("intake", "admin"))
    assert [k["revoked"] is not None for k in keys.json()["data"]] == [True]


def test_only_admins_open_the_admin_pages(stack: Stack) -> None:
    for username in ("audrey", "zhao", "ann"):
        other = stack.browser(username, "/admin")
        for path in ("/admin", "/admin/policies/new"):
            answer = other.get(path)
            assert answer.status_code == 403, (username, path)
        page = other.get("/").text
        assert 'href="/admin"' not in page
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        posted = other.post("/admin/keys", data={"csrf_token": csrf, "tenant": "evil"})
        assert posted.status_code == 403
    keys = stack.clients["intake"].get("/v1/admin/api-keys", headers=stack.staff("intake", "admin"))
    assert keys.json()["data"] == []
    for role in ("auditor", "finance"):  # intake itself refuses them too
        listed = stack.clients["intake"].get(
            "/v1/admin/api-keys", headers=stack.staff("intake", role)
        )
        assert listed.status_code == 403
        issued = stack.clients["intake"].post(
            "/v1/admin/api-keys", json={"tenant": "evil"}, headers=stack.staff("intake", role)
        )
        assert issued.status_code == 403


def test_the_admin_page_speaks_both_languages(stack: Stack) -> None:
    root = stack.browser("root", "/admin")
    zh = root.get("/admin").text
    assert '<html lang="zh-CN">' in zh and "政策版本" in zh and "平台 API 密钥" in zh
    csrf = zh.split('name="csrf_token" value="')[1].split('"')[0]
    en = root.post("/language", data={"csrf_token": csrf, "locale": "en", "next": "/admin"}).text
    assert '<html lang="en">' in en and "Policy versions" in en and "Platform API keys" in en


def test_a_tenants_webhook_endpoints_show_their_status_and_the_disabled_ones(
    stack: Stack,
) -> None:
    webhooks = stack.services["notify"].http.state.notify.webhooks
    webhooks.allow_private = True  # the test's receivers are local addresses
    webhooks.register_endpoint(
        tenant="acme", url="https://127.0.0.1:9/ok", event_types=["*"], actor="tenant:acme"
    )
    gone, _ = webhooks.register_endpoint(
        tenant="acme", url="https://127.0.0.1:9/gone", event_types=["*"], actor="tenant:acme"
    )
    gone.disable(reason="gone", at=datetime.now(UTC), actor="system:notify")
    webhooks.app.save(gone)
    webhooks.register_endpoint(
        tenant="globex", url="https://127.0.0.1:9/other", event_types=["*"], actor="tenant:globex"
    )

    root = stack.browser("root", "/admin")
    fields = hidden(root.get("/admin").text, "/admin/keys")
    for tenant in ("globex", "acme"):  # the platforms intake knows: those it issued keys to
        issued = root.post("/admin/keys", data={**fields, "tenant": tenant})
        assert issued.status_code == 201, issued.text
        fields = hidden(issued.text, "/admin/keys")
    offered = root.get("/admin").text
    choices = offered[offered.index('<select name="tenant" id="webhook-tenant">') :]
    choices = choices[: choices.index("</select>")]
    assert re.findall(r'<option value="([^"]*)"', choices) == ["", "acme", "globex"]
    assert 'name="typed"' in offered  # a platform with no stored key can still be typed
    typed = root.get("/admin", params={"tenant": "acme", "typed": "globex"}).text
    assert "https://127.0.0.1:9/other" in typed  # the typed name wins over the choice
    refused_name = root.get("/admin", params={"typed": "Not A Name"})
    assert refused_name.status_code == 422 and "typed" in refused_name.text

    page = root.get("/admin", params={"tenant": "acme"})
    assert page.status_code == 200, page.text
    chosen = page.text[page.text.index('id="webhook-tenant"') :]
    assert '<option value="acme" selected>' in chosen
    section = page.text[page.text.index('id="webhooks"') :]
    assert "https://127.0.0.1:9/ok" in section and "https://127.0.0.1:9/gone" in section
    assert "/other" not in section  # another tenant's
    assert "已启用" in section and "接收方回复 410 Gone" in section
    assert "whsec_" not in page.text  # secrets are never shown
    refused = stack.clients["notify"].get(
        "/v1/admin/webhook_endpoints",
        params={"tenant": "acme"},
        headers=stack.staff("notify", "auditor"),
    )
    assert refused.status_code == 403  # admins only
