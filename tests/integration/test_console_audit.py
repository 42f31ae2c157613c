"""The auditor's console pages over the four services: one refund's timeline across the
ledgers in causal order, each ledger's check and signed reach, an export that downloads the
entries; only auditors and admins get the pages; both languages render."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.console_stack import Stack, console_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with console_stack(tmp_path) as made:
        yield made


def test_the_timeline_spans_the_services_causes_first(stack: Stack) -> None:
    refund = stack.refund()
    audrey = stack.browser("audrey", "/audit")
    page = audrey.get("/audit", params={"refund_id": refund["id"]})
    assert page.status_code == 200, page.text
    assert '<html lang="zh-CN">' in page.text and "时间线" in page.text
    body = page.text[page.text.index('<table class="timeline">') :]
    rows = body[: body.index("</table>")].split("<tr id=")[1:]
    services = [row.split("<td>")[2].split(" #")[0] for row in rows]
    assert "受理" in services and "审核" in services, services  # intake's and review's entries
    assert services.index("受理") < services.index("审核")  # the request caused the case
    requested = rows[services.index("受理")]
    opened = rows[services.index("审核")]
    assert "RefundRequest.Requested" in requested and "ReviewCase.Opened" in opened
    requested_id = requested.split('"')[1].removeprefix("event-")
    assert f'<a href="#event-{requested_id}">' in opened  # its cause, linked
    assert "tenant:acme" in requested and "system:review" in opened  # the actors
    assert "¥129.00" in requested  # amounts in words, not stored JSON


def test_the_refunds_touched_lately_are_listed_newest_first(stack: Stack) -> None:
    older, newer = stack.refund(), stack.refund(5000)
    page = stack.browser("audrey", "/audit").get("/audit").text
    section = page[page.index('id="recent"') :]
    links = re.findall(r'<a href="/audit\?refund_id=([A-Za-z0-9_]+)">', section)
    assert links[:2] == [newer["id"], older["id"]]


def test_ledgers_are_checked_and_checkpoints_show_how_far_they_reach(stack: Stack) -> None:
    stack.refund()
    signed = stack.clients["review"].post(
        "/v1/audit/checkpoints", headers=stack.staff("review", "auditor")
    )
    assert signed.status_code == 200, signed.text
    position = signed.json()["position"]
    audrey = stack.browser("audrey", "/audit")
    page = audrey.get("/audit").text
    assert 'href="/audit/ledgers"' in page  # checked on request, not on every page
    ledgers = audrey.get("/audit/ledgers").text
    assert ledgers.count("完好") == 4  # every service's ledger intact
    review_row = ledgers[ledgers.index("<td>审核</td>") :]
    assert f"<td>{position}</td>" in review_row.split("</tr>")[0]


def test_a_deleted_event_shows_as_a_finding_of_that_ledger(stack: Stack, tmp_path: Path) -> None:
    stack.refund()
    made = stack.clients["review"].post(
        "/v1/audit/checkpoints", headers=stack.staff("review", "auditor")
    )
    assert made.status_code == 200, made.text
    with sqlite3.connect(tmp_path / "review.sqlite") as db:  # someone edits the store
        db.execute("DELETE FROM stored_events WHERE rowid = 2")
    ledgers = stack.browser("audrey", "/audit").get("/audit/ledgers").text
    review_row = ledgers[ledgers.index("<td>审核</td>") :].split("</tr>")[0]
    assert "sla-late" in review_row and "项问题" in review_row
    assert "<code>deleted</code> #2" in review_row
    assert ledgers.count("完好") == 3  # the other three are intact


def test_a_service_that_does_not_answer_is_named_never_guessed(tmp_path: Path) -> None:
    with console_stack(tmp_path, down=frozenset({"notify"})) as stack:
        refund = stack.refund()
        audrey = stack.browser("audrey", "/audit")
        page = audrey.get("/audit", params={"refund_id": refund["id"]})
        assert page.status_code == 200, page.text
        assert "以下服务未应答，时间线中缺少其记录：" in page.text
        missing = page.text.split("时间线中缺少其记录：")[1].split("</p>")[0]
        assert missing.strip() == "通知"
        assert "RefundRequest.Requested" in page.text  # the rest is still shown
        assert "通知服务未应答。" in audrey.get("/audit/ledgers").text  # its ledger row says so


def test_an_export_downloads_the_entries_as_csv_and_jsonl(stack: Stack) -> None:
    refund = stack.refund()
    audrey = stack.browser("audrey", "/audit")
    page = audrey.get("/audit").text
    assert 'action="/audit/export"' in page  # a plain form, no script needed
    answer = audrey.get("/audit/export", params={"service": "intake", "format": "csv"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and all(row["service"] == "intake" for row in rows)
    assert [int(r["position"]) for r in rows] == sorted(int(r["position"]) for r in rows)
    assert any(row["correlation_id"] == refund["id"] for row in rows)

    ranged = audrey.get(
        "/audit/export", params={"service": "intake", "format": "jsonl", "start": 2, "end": 2}
    )
    lines = [json.loads(line) for line in ranged.text.splitlines()]
    assert [line["position"] for line in lines] == [2]
    assert lines[0]["hash"] == rows[1]["hash"]

    wrong = audrey.get("/audit/export", params={"service": "nobody"})
    assert wrong.status_code == 422 and "<code>service</code>" in wrong.text


def test_an_export_by_days_keeps_the_entries_of_those_days_in_the_persons_zone(
    stack: Stack, tmp_path: Path
) -> None:
    stack.refund()
    audrey = stack.browser("audrey", "/audit")  # her zone: Asia/Shanghai (UTC+8)
    assert "Asia/Shanghai" in audrey.get("/audit").text
    everything = audrey.get("/audit/export", params={"service": "intake", "format": "jsonl"})
    positions = [json.loads(line)["position"] for line in everything.text.splitlines()]
    assert len(positions) >= 4, positions  # all sealed now; give four of them known times
    stored_at = {
        positions[0]: "2026-01-01T15:59:59.999999+00:00",  # 23:59:59 on 1 January in Shanghai
        positions[1]: "2026-01-01T16:00:00.000000+00:00",  # midnight starting 2 January there
        positions[2]: "2026-01-02T15:59:59.999999+00:00",  # the last moment of 2 January there
        positions[3]: "2026-01-02T16:00:00.000000+00:00",  # 3 January there
    }
    with sqlite3.connect(tmp_path / "intake.sqlite") as db:
        for position, at in stored_at.items():
            db.execute("UPDATE audit_ledger SET at = ? WHERE position = ?", (at, position))

    day = {"service": "intake", "from_date": "2026-01-02", "to_date": "2026-01-02"}
    jsonl = audrey.get("/audit/export", params={**day, "format": "jsonl"})
    assert jsonl.status_code == 200, jsonl.text
    assert [json.loads(line)["position"] for line in jsonl.text.splitlines()] == positions[1:3]
    assert "2026-01-02-2026-01-02" in jsonl.headers["content-disposition"]
    table = audrey.get("/audit/export", params={**day, "format": "csv"})
    assert [int(r["position"]) for r in csv.DictReader(io.StringIO(table.text))] == positions[1:3]
    # Days and positions together: the entries in both.
    both = audrey.get(
        "/audit/export", params={**day, "format": "jsonl", "start": positions[2], "end": 10**6}
    )
    assert [json.loads(line)["position"] for line in both.text.splitlines()] == [positions[2]]
    since = audrey.get(
        "/audit/export", params={"service": "intake", "format": "jsonl", "from_date": "2026-01-03"}
    )
    after = [json.loads(line)["position"] for line in since.text.splitlines()]
    assert positions[3] in after and not set(positions[:3]) & set(after)  # today's too

    # The form as a browser sends it with the optional fields left empty: the whole ledger.
    blank = {"start": "1", "end": "", "from_date": "", "to_date": ""}
    whole = audrey.get("/audit/export", params={**day, **blank, "format": "jsonl"})
    assert whole.status_code == 200, whole.text
    assert len(whole.text.splitlines()) == len(positions)

    unreadable = audrey.get("/audit/export", params={**day, "from_date": "2 Jan"})
    assert unreadable.status_code == 422 and "<code>from_date</code>" in unreadable.text
    backwards = audrey.get("/audit/export", params={**day, "from_date": "2026-01-03"})
    assert backwards.status_code == 422 and "<code>to_date</code>" in backwards.text
    empty = stack.clients["intake"].get(
        "/v1/audit/log",
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=stack.staff("intake", "auditor"),
    )
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "until"


def test_only_auditors_and_admins_open_the_audit_pages(stack: Stack) -> None:
    root = stack.browser("root", "/audit")
    assert root.get("/audit").status_code == 200
    for username in ("ann", "zhao"):
        other = stack.browser(username, "/audit")
        for path in ("/audit", "/audit/ledgers", "/audit/export"):
            refused = other.get(path)
            assert refused.status_code == 403, (username, path)
            assert "您的角色无权打开此页面。" in refused.text
        nav = other.get("/").text
        assert 'href="/audit"' not in nav
    for path in ("/v1/audit/verify", "/v1/audit/latest"):  # the services refuse them too
        for service in ("intake", "payout"):
            client = stack.clients[service]
            assert client.get(path).status_code == 401
            assert client.get(path, headers=stack.staff(service, "reviewer")).status_code == 403
            assert client.get(path, headers=stack.staff(service, "auditor")).status_code == 200


def test_the_audit_page_speaks_english_too(stack: Stack) -> None:
    refund = stack.refund()
    audrey = stack.browser("audrey", "/audit")
    page = audrey.get("/audit").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    english = audrey.post(
        "/language",
        data={"csrf_token": token, "locale": "en", "next": f"/audit?refund_id={refund['id']}"},
    )
    assert '<html lang="en">' in english.text
    assert "Timeline of" in english.text and "Export a range" in english.text
    assert "Intact" in audrey.get("/audit/ledgers").text
