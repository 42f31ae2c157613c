"""The console's pieces without a server: the vendored htmx's recorded hash, complete catalogs,
exact amounts and local times per language, settings refused in production, no open redirect,
the CSRF guard, the forms read into review's bodies and single-flight token refreshes."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.console.catalogs import shown_messages, shown_strings, untranslated
from services.console.i18n import Formats, compile_catalogs
from services.console.pages.auth import local_path
from services.console.pages.case_forms import FormProblem, body_of
from services.console.pages.queue import review_query, sla
from services.console.refreshing import SingleFlight, Spent
from services.console.settings import DEV_SESSION_SECRET, ConsoleSettings
from services.console.signin import Provider
from services.console.vocabulary import LOCALES
from services.review.duties import missing_approvals, still_needed

STATIC = Path("services/console/static")
SHANGHAI = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")


def test_the_vendored_htmx_matches_its_recorded_version_and_hash() -> None:
    record = (STATIC / "VENDORED.md").read_text()
    row = re.search(
        r"\| `htmx.min.js` \| `htmx.org` \(npm\) \| (2\.\d+\.\d+) \|.*\| `([0-9a-f]{64})` \|",
        record,
    )
    assert row is not None, "VENDORED.md records no htmx version and SHA-256"
    content = (STATIC / "htmx.min.js").read_bytes()
    assert hashlib.sha256(content).hexdigest() == row.group(2)
    assert f'version:"{row.group(1)}"' in content.decode()


def test_every_shown_string_is_translated_in_both_catalogs() -> None:
    shown = shown_strings()
    assert {"Review queue", "Submit and next", "One more approval, by a senior reviewer."} <= shown
    for tag in LOCALES:
        assert untranslated(tag) == [], f"{tag} lacks translations"


def test_the_catalogs_compile_and_translate() -> None:
    catalogs = compile_catalogs()
    assert catalogs["zh-CN"].gettext("Review queue") == "审核队列"
    assert catalogs["en"].gettext("Review queue") == "Review queue"


def test_a_word_used_as_a_state_and_as_an_amount_has_two_translations() -> None:
    zh, en = compile_catalogs()["zh-CN"], compile_catalogs()["en"]
    assert {("Approved", "amount"), ("Approved", None), ("Paid", "amount")} <= shown_messages()
    assert (zh.gettext("Approved"), zh.pgettext("amount", "Approved")) == ("已批准", "批准金额")
    assert (zh.gettext("Paid"), zh.pgettext("amount", "Paid")) == ("已付款", "已付金额")
    assert en.pgettext("amount", "Paid") == "Paid"


@pytest.mark.parametrize(
    ("tag", "minor", "currency", "shown"),
    [
        ("zh-CN", 250000, "CNY", "¥2,500.00"),
        ("en", 250000, "CNY", "CN¥2,500.00"),
        ("en", 1, "CNY", "CN¥0.01"),
        ("en", 1500, "JPY", "¥1,500"),
        # Beyond a float's 53 bits: exact, because it never goes through a float.
        ("en", 123456789012345678, "USD", "$1,234,567,890,123,456.78"),
    ],
)
def test_amounts_are_formatted_exactly_per_language(
    tag: str, minor: int, currency: str, shown: str
) -> None:
    assert Formats(tag, SHANGHAI).money(minor, currency) == shown


def test_times_are_shown_in_the_persons_zone_and_language() -> None:
    at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert "10:00" in Formats("zh-CN", SHANGHAI).when(at)
    assert "2026" in Formats("en", SHANGHAI).when("2026-11-20T02:00:00Z")
    assert Formats("en", SHANGHAI).major(250000, "CNY") == "2500.00"


def test_production_refuses_a_missing_weak_or_dev_session_secret() -> None:
    real = {
        "env": "production",
        "console_url": "https://console.example.com",
        "oidc_client_secret": "a-real-client-secret-from-the-provider",
        "audit_signing_key": "",
    }
    for secret in ("", "short", DEV_SESSION_SECRET):
        with pytest.raises(ValidationError, match="SESSION_SECRET"):
            ConsoleSettings(**real, session_secret=secret)
    loopback = ConsoleSettings(
        **{**real, "console_url": "http://localhost:8005"}, session_secret="x" * 40
    )
    assert loopback.secure_cookies  # browsers keep Secure cookies for http://localhost
    with pytest.raises(ValidationError, match="https"):
        ConsoleSettings(
            **{**real, "console_url": "http://console.example.com"}, session_secret="x" * 40
        )
    assert ConsoleSettings(env="dev").secret() == DEV_SESSION_SECRET
    with pytest.raises(ValidationError, match="DEFAULT_ZONE"):
        ConsoleSettings(default_zone="Mars/Olympus")
    for placeholder in ("change-me", ""):  # what a template leaves unfilled is refused too
        with pytest.raises(ValidationError, match="OIDC_CLIENT_SECRET"):
            ConsoleSettings(**{**real, "oidc_client_secret": placeholder}, session_secret="x" * 40)


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/queue?tier=major", "/queue?tier=major"),
        ("//evil.example.com/x", "/"),
        ("https://evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        (None, "/"),
    ],
)
def test_redirects_stay_on_the_console(target: str | None, safe: str) -> None:
    assert local_path(target) == safe


def _(text: str) -> str:
    return text


def test_approve_form_becomes_reviews_body_in_minor_units() -> None:
    body = body_of(
        "approve",
        {
            "amount": "2,500.00",
            "liability_merchant": "2000",
            "liability_carrier": "500",
            "coupon": "50",
            "note": "crushed",
        },
        "CNY",
        _,
    )
    assert body == {
        "amount": {"amount": 250000, "currency": "CNY"},
        "note": "crushed",
        "liability": {"platform": 0, "merchant": 200000, "carrier": 50000},
        "coupon": {"amount": 5000, "currency": "CNY"},
    }
    assert body_of("claim", {}, "CNY", _) is None


@pytest.mark.parametrize("amount", ["", "abc", "1.001", "NaN", "Infinity"])
def test_an_unreadable_amount_names_its_field(amount: str) -> None:
    with pytest.raises(FormProblem) as refused:
        body_of("approve", {"amount": amount}, "CNY", _)
    assert list(refused.value.fields) == ["amount"]


def test_reject_and_evidence_forms_need_their_texts() -> None:
    with pytest.raises(FormProblem) as refused:
        body_of("reject", {"reason_code": "no_defect_found", "explanation_zh": "无"}, "CNY", _)
    assert list(refused.value.fields) == ["explanation_en"]
    rejected = body_of(
        "reject",
        {
            "reason_code": "no_defect_found",
            "explanation_zh": "无缺陷。",
            "explanation_en": "No defect.",
            "internal_note": "  same photo as rf_1 ",
        },
        "CNY",
        _,
    )
    assert rejected == {
        "reason_code": "no_defect_found",
        "explanation": {"zh-CN": "无缺陷。", "en": "No defect."},
        "internal_note": "same photo as rf_1",
    }
    asked = body_of("request-evidence", {"missing": "photo\n\n note ", "message": "m"}, "CNY", _)
    assert asked == {"missing": ["photo", "note"], "message": "m"}


def test_queue_filters_become_reviews_query_and_the_countdown_its_colour() -> None:
    assert review_query({"assignee": "me", "overdue": "yes", "tier": ""}, "ann") == {
        "tier": None,
        "state": None,
        "assignee": "ann",
        "overdue": "true",
        "reason": None,
        "currency": None,
        "order": None,
    }
    asked = review_query(
        {"min": "500", "max": "2,000.50".replace(",", ""), "sort": "deadline", "reason": "damaged"},
        "ann",
    )
    assert asked["min_amount"] == 50000 and asked["max_amount"] == 200050
    assert asked["currency"] == "CNY" and asked["order"] == "due" and asked["reason"] == "damaged"
    with pytest.raises(FormProblem) as refused:
        review_query({"max": "12.345"}, "ann")
    assert list(refused.value.fields) == ["max"]
    now = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    due = {"state": "pending", "deadline": "2026-11-20T03:00:00+00:00"}
    assert sla(due, now)["urgency"] == "sla-soon"
    assert sla({**due, "deadline": "2026-11-21T03:00:00+00:00"}, now)["urgency"] == "sla-ok"
    assert sla({**due, "deadline": "2026-11-20T01:00:00+00:00"}, now)["urgency"] == "sla-late"
    assert sla({**due, "deadline": None}, now)["urgency"] == "sla-paused"


def test_review_says_what_is_still_needed_as_data() -> None:
    needs = {"count": 2, "senior": True, "finance": False}
    approvals = [{"person": "ann", "roles": ["reviewer"]}]
    assert still_needed(needs, approvals) == {
        "approvals": 1,
        "senior_reviewer": True,
        "finance": False,
    }
    assert missing_approvals(needs, approvals) == ["1 more approval(s)", "a senior_reviewer"]
    done = [*approvals, {"person": "wang", "roles": ["senior_reviewer"]}]
    assert still_needed(needs, done) == {"approvals": 0, "senior_reviewer": False, "finance": False}


def test_the_person_and_roles_are_read_as_the_services_read_them() -> None:
    keycloak = ConsoleSettings(oidc_roles_claim="realm_access.roles")
    claims = {
        "sub": "5c1d-uuid",
        "preferred_username": "ann",
        "realm_access": {"roles": ["reviewer", "offline_access"]},
        "roles": ["admin"],  # not where this provider's roles are
    }
    assert Provider(keycloak).person_of(claims) == ("ann", ["reviewer", "offline_access"])
    flat = Provider(ConsoleSettings(oidc_person_claim="email"))
    assert flat.person_of(claims) == ("5c1d-uuid", ["admin"])  # no such claim: the sub
    assert flat.person_of({"sub": "x", "roles": "admin"}) == ("x", [])


def test_people_share_the_console_connections_but_never_a_token_or_cookie() -> None:
    """One pooled client per service (a client per request cost ~21 CPU-ms): each call
    carries its own person's bearer, and a cookie a service sets reaches nobody."""
    import asyncio

    import httpx

    from services.console.calls import Connections, Services

    seen: list[tuple[str | None, str | None]] = []

    def review(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("authorization"), request.headers.get("cookie")))
        return httpx.Response(200, json={"data": []}, headers={"set-cookie": "who=ann; Path=/"})

    async def calls() -> None:
        connections = Connections(
            {"review": "http://review.test"},
            timeout=5,
            transports={"review": httpx.MockTransport(review)},
        )
        ann, bob = Services(connections, "token-ann"), Services(connections, "token-bob")
        assert await ann.get("review", "/v1/cases") == {"data": []}
        assert await bob.get("review", "/v1/cases", {"tier": None, "limit": 20}) == {"data": []}
        assert connections.client("review") is connections.client("review")
        await connections.close()

    asyncio.run(calls())
    assert seen == [("Bearer token-ann", None), ("Bearer token-bob", None)]


async def test_a_session_refreshing_twice_at_once_asks_the_provider_once() -> None:
    flights = SingleFlight()
    asked: list[str] = []

    async def renew(refresh: str) -> dict[str, Any]:
        asked.append(refresh)
        await asyncio.sleep(0.05)  # the provider's round trip: the other request waits
        return {"access_token": "at-2", "refresh_token": "rt-2", "expires_at": 2.0}

    first = {"access_token": "at-1", "refresh_token": "rt-1", "csrf": "a"}
    second = {"access_token": "at-1", "refresh_token": "rt-1", "csrf": "a"}
    done = await asyncio.gather(
        flights.refresh("s1", first, renew), flights.refresh("s1", second, renew)
    )
    assert done == [True, True] and asked == ["rt-1"]
    assert first["refresh_token"] == second["refresh_token"] == "rt-2"
    assert second["access_token"] == "at-2" and second["csrf"] == "a"


async def test_a_spent_token_takes_the_tokens_another_process_stored() -> None:
    async def spent(refresh: str) -> dict[str, Any]:
        raise Spent

    stored: list[dict[str, Any] | None] = [{"refresh_token": "rt-1"}]

    async def reread() -> dict[str, Any] | None:
        found = stored[0]
        stored[0] = {"access_token": "at-9", "refresh_token": "rt-9", "expires_at": 9.0}
        return found  # the other process stores its tokens between the first and second read

    session = {"access_token": "at-1", "refresh_token": "rt-1"}
    assert await SingleFlight().refresh("s1", session, spent, reread=reread)
    assert session["access_token"] == "at-9" and session["refresh_token"] == "rt-9"
    gone = {"access_token": "at-1", "refresh_token": "rt-1"}

    async def signed_out() -> dict[str, Any] | None:
        return None

    assert not await SingleFlight().refresh("s2", gone, spent, reread=signed_out)
