"""The staff console end to end, in-process: signed in through the sandbox identity provider
(served by uvicorn), calling review's real staff API (in-process, SQLite) with the person's
own access token. The queue lists cases; approving through the console is recorded under the
person's name once per form; a refusal changes nothing and says why; a POST without its CSRF
token is a 403; the security headers are on every page; pages speak zh-CN and en."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.dates import format_datetime
from fastapi.testclient import TestClient

from services.console.bootstrap import console_app
from services.console.sessions import SqliteSessions
from services.console.settings import ConsoleSettings
from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_oidc import OidcConfig
from shared.store import store_env
from tests.support.identity import serve_identity
from tests.support.review_api import SECRET, Clock, Review

CONSOLE_URL = "http://127.0.0.1:8005"  # the redirect URI's base, registered at the provider
WAIT = 5.0
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "frame-ancestors 'none'; form-action 'self' {issuer}"
)


@dataclass
class Stack:
    issuer: str
    review: Review
    console: TestClient

    def browser(self) -> TestClient:
        """Another person's browser on the same console."""
        return TestClient(self.console.app, base_url=CONSOLE_URL)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with serve_identity(tmp_path / "idp") as issuer:
        settings = ServiceSettings(env="test", data_dir=tmp_path)
        clock = Clock()
        app = ReviewApplication(default_policy(), env=store_env(settings, "review"), clock=clock)
        app.record_shipped_policy()
        queue = ReviewQueue(app)
        review_http = staff_api(app, queue, StaffAuth(SECRET, OidcConfig(issuer=issuer)))
        console = console_app(
            ConsoleSettings(
                env="test", data_dir=tmp_path, oidc_issuer=issuer, console_url=CONSOLE_URL
            ),
            SqliteSessions(tmp_path / "console.sqlite", "console-test-session-secret"),
            transports={"review": httpx.ASGITransport(app=review_http)},
        )
        try:
            with (
                TestClient(review_http) as review_client,
                TestClient(console, base_url=CONSOLE_URL) as console_client,
            ):
                yield Stack(issuer, Review(review_client, app, queue, clock), console_client)
        finally:
            app.close()


def sign_in(browser: TestClient, issuer: str, username: str, start: str = "/queue") -> None:
    """Through the provider's own form: the console redirects there, the person signs in, the
    provider redirects back to the console's callback with the code."""
    to_login = browser.get(start, follow_redirects=False)
    assert to_login.status_code == 303, to_login.text
    assert to_login.headers["location"].startswith("/auth/login?next=")
    to_provider = browser.get(to_login.headers["location"], follow_redirects=False)
    assert to_provider.status_code == 302, to_provider.text
    authorize = to_provider.headers["location"]
    assert authorize.startswith(f"{issuer}/authorize"), authorize
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["nonce"][0] and query["state"][0]
    with httpx.Client(timeout=WAIT) as idp:  # the provider's pages, in the same browser
        form = idp.get(authorize)
        assert form.status_code == 200, form.text
        handle = re.search(r'name="handle" value="([^"]+)"', form.text)
        assert handle is not None
        answer = idp.post(
            f"{issuer}/authorize",
            data={"handle": handle.group(1), "username": username, "password": "demo"},
        )
    assert answer.status_code == 302, answer.text
    back = answer.headers["location"]
    assert back.startswith(CONSOLE_URL + "/auth/callback?")
    landed = browser.get(back.removeprefix(CONSOLE_URL), follow_redirects=False)
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == start


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action` (CSRF token, Idempotency-Key, …)."""
    start = page.index(f'action="{action}"')
    form = page[start : page.index("</form>", start)]
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form))


# -- sign-in and the queue ----------------------------------------------------------------------


def test_sign_in_through_the_provider_then_the_queue_lists_cases(stack: Stack) -> None:
    cases = [stack.review.request(600), stack.review.request(2500)]
    sign_in(stack.console, stack.issuer, "ann")
    cookie = next(
        c for c in stack.console.cookies.jar if c.name == "refunds_console"
    )  # the session id only: the tokens stay server-side
    assert len(cookie.value) >= 40 and "." not in cookie.value

    page = stack.console.get("/queue")
    assert page.status_code == 200, page.text
    for refund_id in cases:
        assert f'href="/cases/{refund_id}"' in page.text
    assert "sla-late" in page.text or "sla-ok" in page.text or "sla-soon" in page.text
    assert "安娜" in page.text  # the person's name from the id token, in the default zh-CN

    important = stack.console.get("/queue", params={"tier": "important"}).text
    assert cases[1] in important and cases[0] not in important
    assert "¥2,500.00" in important and "商品损坏" in important  # amount and reason shown
    over_1000 = stack.console.get("/queue", params={"min": "1000", "currency": "CNY"}).text
    assert cases[1] in over_1000 and cases[0] not in over_1000
    due_first = stack.console.get("/queue", params={"sort": "deadline"}).text
    by_deadline = sorted(cases, key=lambda case: stack.review.case(case)["deadline"])
    assert [due_first.index(case) for case in by_deadline] == sorted(
        due_first.index(case) for case in by_deadline
    )
    unreadable = stack.console.get("/queue", params={"max": "12.345"})
    assert unreadable.status_code == 422 and "<code>max</code>" in unreadable.text


def test_the_session_cookie_is_httponly_lax_and_renewed_at_sign_in(stack: Stack) -> None:
    answer = stack.console.get("/")  # the sign-in page holds a form: a session for its token
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    before = stack.console.cookies.get("refunds_console")
    sign_in(stack.console, stack.issuer, "ann")
    after = stack.console.cookies.get("refunds_console")
    assert before and after and after != before  # no session fixation
    sessions = stack.console.app.state.sessions  # type: ignore[attr-defined]
    assert sessions.load(before) is None and sessions.load(after)["username"] == "ann"


def test_assigned_to_me_and_saved_views(stack: Stack) -> None:
    first, second = stack.review.request(600), stack.review.request(700)
    sign_in(stack.console, stack.issuer, "ann")
    queue = stack.console.get("/queue").text
    claimed = stack.console.post(
        f"/cases/{first}/claim", data=form_fields(queue, f"/cases/{first}/claim")
    )
    assert claimed.status_code == 200 and str(claimed.url).endswith("/queue")
    mine = stack.console.get("/queue", params={"assignee": "me"}).text
    assert first in mine and second not in mine

    saved = stack.console.post(
        "/queue/views",
        data={"csrf_token": csrf(mine), "name": "Mine", "assignee": "me"},
    )
    assert saved.status_code == 200 and 'href="/queue?view=Mine"' in saved.text
    assert first in saved.text and second not in saved.text
    # Views are the person's, not the sign-in's: another sign-in of ann finds them.
    again = stack.browser()
    sign_in(again, stack.issuer, "ann")
    assert 'href="/queue?view=Mine"' in again.get("/queue").text


# -- a case, approved through the console ---------------------------------------------------------


def test_approvals_through_the_console_are_the_persons_and_happen_once(stack: Stack) -> None:
    refund_id = stack.review.request(2500)  # important: two approvals by two people
    sign_in(stack.console, stack.issuer, "ann")
    page = stack.console.get(f"/cases/{refund_id}")
    assert page.status_code == 200
    assert "还需 2 个批准。" in page.text  # what is still needed, in words
    fields = form_fields(page.text, f"/cases/{refund_id}/approve")
    assert fields["idempotency_key"] and fields["csrf_token"]

    form = {**fields, "amount": "2500.00", "note": "Photo shows the crack."}
    first = stack.console.post(f"/cases/{refund_id}/approve", data=form)
    assert first.status_code == 200, first.text
    again = stack.console.post(f"/cases/{refund_id}/approve", data=form)  # a double submit
    assert again.status_code == 200, again.text
    case = stack.review.case(refund_id)
    assert [a["person"] for a in case["approvals"]] == ["ann"]
    assert stack.review.stored(refund_id, "ApprovalAdded") == 1
    assert "还需一个批准。" in again.text

    # ann's second approval, from a freshly rendered form: refused, said why, nothing changed.
    fresh = form_fields(again.text, f"/cases/{refund_id}/approve")
    refused = stack.console.post(f"/cases/{refund_id}/approve", data={**fresh, "amount": "2500.00"})
    assert refused.status_code == 403
    assert (
        "第二个批准必须由另一个人作出。" in refused.text and "duty.second_approver" in refused.text
    )
    assert [a["person"] for a in stack.review.case(refund_id)["approvals"]] == ["ann"]

    bob = stack.browser()
    sign_in(bob, stack.issuer, "bob", start=f"/cases/{refund_id}")
    bob_page = bob.get(f"/cases/{refund_id}").text
    done = bob.post(
        f"/cases/{refund_id}/approve",
        data={**form_fields(bob_page, f"/cases/{refund_id}/approve"), "amount": "2500.00"},
    )
    assert done.status_code == 200, done.text
    case = stack.review.case(refund_id)
    assert case["state"] == "approved"
    assert [a["person"] for a in case["approvals"]] == ["ann", "bob"]


def test_submit_and_next_goes_to_the_next_pending_case(stack: Stack) -> None:
    older, newer = stack.review.request(600), stack.review.request(700)
    sign_in(stack.console, stack.issuer, "wang", start=f"/cases/{newer}")
    page = stack.console.get(f"/cases/{newer}").text
    answer = stack.console.post(
        f"/cases/{newer}/approve",
        data={**form_fields(page, f"/cases/{newer}/approve"), "amount": "700", "then": "next"},
    )
    assert answer.status_code == 200 and str(answer.url).endswith(f"/cases/{older}")
    assert stack.review.case(newer)["state"] == "approved"


def test_a_form_the_console_cannot_read_names_the_field_and_sends_nothing(stack: Stack) -> None:
    refund_id = stack.review.request(2500)
    sign_in(stack.console, stack.issuer, "ann", start="/queue")
    page = stack.console.get(f"/cases/{refund_id}").text
    fields = form_fields(page, f"/cases/{refund_id}/approve")
    answer = stack.console.post(f"/cases/{refund_id}/approve", data={**fields, "amount": "25.001"})
    assert answer.status_code == 422
    assert "<code>amount</code>" in answer.text and "小数位" in answer.text
    assert stack.review.case(refund_id)["approvals"] == []


def test_a_post_without_its_csrf_token_is_403_and_changes_nothing(stack: Stack) -> None:
    refund_id = stack.review.request(2500)
    sign_in(stack.console, stack.issuer, "ann")
    page = stack.console.get(f"/cases/{refund_id}").text
    fields = form_fields(page, f"/cases/{refund_id}/approve")
    for token in (None, "forged-token"):
        data = {k: v for k, v in fields.items() if k != "csrf_token"} | {"amount": "2500.00"}
        if token:
            data["csrf_token"] = token
        answer = stack.console.post(f"/cases/{refund_id}/approve", data=data)
        assert answer.status_code == 403
        assert "安全令牌" in answer.text
    assert stack.review.case(refund_id)["approvals"] == []
    assert stack.review.stored(refund_id, "ApprovalAdded") == 0


def test_every_page_carries_the_security_headers(stack: Stack) -> None:
    refund_id = stack.review.request(600)
    anonymous = stack.console.get("/")
    sign_in(stack.console, stack.issuer, "ann")
    refused = stack.console.post("/language", data={"locale": "en"})
    for answer in (
        anonymous,
        stack.console.get("/queue"),
        stack.console.get(f"/cases/{refund_id}"),
        stack.console.get("/static/console.css"),
        refused,
    ):
        assert answer.headers["content-security-policy"] == CSP.format(issuer=stack.issuer)
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in answer.text and "style=" not in answer.text


# -- languages ------------------------------------------------------------------------------------


def test_the_language_switch_renders_zh_cn_and_en_and_is_remembered(stack: Stack) -> None:
    refund_id = stack.review.request(2500)
    sign_in(stack.console, stack.issuer, "bob")
    zh = stack.console.get(f"/cases/{refund_id}").text
    assert '<html lang="zh-CN">' in zh and "可退金额" in zh and "¥2,500.00" in zh

    switched = stack.console.post(
        "/language",
        data={"csrf_token": csrf(zh), "locale": "en", "next": f"/cases/{refund_id}"},
    )
    en = switched.text
    assert '<html lang="en">' in en and "Refundable" in en and "CN¥2,500.00" in en
    assert "2 more approvals." in en
    assert "Review queue" in stack.console.get("/queue").text

    # Signed out and in again, the long-lived cookie keeps the language.
    out = stack.console.post("/auth/logout", data={"csrf_token": csrf(en)}, follow_redirects=False)
    assert out.status_code == 303
    sign_in(stack.console, stack.issuer, "bob")
    assert '<html lang="en">' in stack.console.get("/queue").text


def test_sign_out_ends_the_session_here_and_at_the_provider(stack: Stack) -> None:
    sign_in(stack.console, stack.issuer, "ann")
    page = stack.console.get("/queue").text
    out = stack.console.post(
        "/auth/logout", data={"csrf_token": csrf(page)}, follow_redirects=False
    )
    assert out.status_code == 303
    target = urlsplit(out.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}".startswith(stack.issuer)
    query = parse_qs(target.query)
    assert query["post_logout_redirect_uri"] == [CONSOLE_URL + "/"]
    assert query["id_token_hint"][0]
    after = stack.console.get("/queue", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/auth/login")


def test_a_callback_with_a_forged_state_signs_nobody_in(stack: Stack) -> None:
    stack.console.get("/auth/login", follow_redirects=False)
    answer = stack.console.get("/auth/callback", params={"code": "x", "state": "forged"})
    assert answer.status_code == 401
    after = stack.console.get("/queue", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/auth/login")


def test_times_are_shown_in_the_persons_own_zone(stack: Stack) -> None:
    refund_id = stack.review.request(600)
    deadline = datetime.fromisoformat(stack.review.case(refund_id)["deadline"])
    shown = {}
    for person, zone in (("ann", "Asia/Shanghai"), ("bob", "Europe/London")):
        stack.console.cookies.clear()
        sign_in(stack.console, stack.issuer, person)
        assert _session_of(stack)[1]["zone"] == zone  # the provider's `zoneinfo` claim
        page = stack.console.get(f"/cases/{refund_id}").text
        local = deadline.astimezone(ZoneInfo(zone))
        shown[person] = format_datetime(local, "medium", locale="zh_CN")
        assert shown[person] in page, (person, shown[person])
    assert shown["ann"] != shown["bob"]


def _session_of(stack: Stack) -> tuple[str, dict[str, Any]]:
    session_id = stack.console.cookies.get("refunds_console")
    assert session_id
    found = stack.console.app.state.sessions.load(session_id)  # type: ignore[attr-defined]
    assert found is not None
    return session_id, found


def test_an_expiring_access_token_is_refreshed_else_the_person_signs_in_again(
    stack: Stack,
) -> None:
    refund_id = stack.review.request(600)
    sign_in(stack.console, stack.issuer, "ann")
    session_id, session = _session_of(stack)
    first_token = session["access_token"]
    sessions = stack.console.app.state.sessions  # type: ignore[attr-defined]
    sessions.save(session_id, {**session, "expires_at": time.time() - 1}, 3600)

    assert refund_id in stack.console.get("/queue").text  # refreshed on the way
    _, renewed = _session_of(stack)
    assert renewed["access_token"] != first_token
    assert renewed["refresh_token"] != session["refresh_token"]  # the provider rotates them
    assert renewed["expires_at"] > time.time() + 60

    # A refresh token the provider no longer honours: signed out, sent to sign in again.
    sessions.save(
        session_id, {**renewed, "expires_at": time.time() - 1, "refresh_token": "revoked"}, 3600
    )
    again = stack.console.get("/queue", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/auth/login?next=%2Fqueue"
    assert sessions.load(session_id) is None


def test_a_boosted_request_without_a_session_navigates_the_whole_page_to_sign_in(
    stack: Stack,
) -> None:
    answer = stack.console.get("/queue", headers={"HX-Request": "true"}, follow_redirects=False)
    assert answer.status_code == 200
    assert answer.headers["hx-redirect"] == "/auth/login?next=%2Fqueue"


def test_a_role_without_the_right_is_refused_by_the_service_and_nothing_changes(
    stack: Stack,
) -> None:
    refund_id = stack.review.request(2500)
    sign_in(stack.console, stack.issuer, "audrey", start=f"/cases/{refund_id}")  # an auditor
    page = stack.console.get(f"/cases/{refund_id}").text
    nav = page[page.index("<nav") : page.index("</nav>")]
    assert 'href="/queue"' not in nav  # the navigation shows what the roles allow
    answer = stack.console.post(
        f"/cases/{refund_id}/approve",
        data={**form_fields(page, f"/cases/{refund_id}/approve"), "amount": "2500.00"},
    )
    assert answer.status_code == 403
    assert "审核服务拒绝了此操作，未做任何更改。" in answer.text
    case = stack.review.case(refund_id)
    assert case["approvals"] == [] and case["state"] == "pending"


def test_evidence_is_linked_never_fetched_and_only_as_a_web_link(stack: Stack) -> None:
    refund_id = stack.review.request(600)
    sign_in(stack.console, stack.issuer, "ann", start=f"/cases/{refund_id}")
    page = stack.console.get(f"/cases/{refund_id}").text
    assert '<a href="https://cdn.example.com/1.jpg" rel="noopener noreferrer nofollow">' in page


def test_a_token_the_service_refuses_ends_the_session_and_nothing_is_done(stack: Stack) -> None:
    refund_id = stack.review.request(2500)
    sign_in(stack.console, stack.issuer, "ann", start=f"/cases/{refund_id}")
    page = stack.console.get(f"/cases/{refund_id}").text
    session_id, session = _session_of(stack)
    sessions = stack.console.app.state.sessions  # type: ignore[attr-defined]
    sessions.save(session_id, {**session, "access_token": "not-a-token"}, 3600)
    answer = stack.console.post(
        f"/cases/{refund_id}/approve",
        data={**form_fields(page, f"/cases/{refund_id}/approve"), "amount": "2500.00"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/auth/login")
    assert sessions.load(session_id) is None
    assert stack.review.case(refund_id)["approvals"] == []
