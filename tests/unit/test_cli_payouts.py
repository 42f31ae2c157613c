"""`refunds payouts reconcile` against a real payout staff API served by uvicorn (SQLite)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from refunds.cli import main
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.domain import Payout
from services.payout.providers.gateway import SETTLEMENT_COLUMNS as COLUMNS
from services.payout.settings import PayoutSettings
from shared.contracts import MoneyModel, PaymentRoute, ReviewApprovedV1, envelope
from shared.ids import public_id
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env
from tests.support.sandbox_gateway import serving

SECRET = "cli-payouts-test-secret-0123456789"
DAY = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
HEADER = ",".join(COLUMNS)


@dataclass
class Served:
    url: str
    app: PayoutApplication
    tmp: Path

    def paid(self, amount: int) -> str:
        event = ReviewApprovedV1(
            refund_id=f"rf_{uuid.uuid4().hex}",
            tenant="acme",
            order_id="ORD-1",
            amount=MoneyModel(amount=amount, currency="CNY"),
            payment=PaymentRoute(method="alipay", reference="pay_1"),
            policy_version="v1",
            rule="auto.small_amount",
            decided_by="policy",
            decided_at=DAY,
        )
        message = envelope(
            event,
            source="review",
            event_id=str(uuid.uuid4()),
            position=amount,
            time=DAY,
            causation_id=None,
        )
        assert self.app.handle(message)
        payout_id = Payout.create_id(message.id)
        self.app.record_dispatch(payout_id, DAY)
        self.app.record_success(payout_id, "gw_1", DAY)
        return public_id("po", payout_id)

    def csv(self, *lines: tuple[str, int]) -> Path:
        rows = [HEADER] + [
            f"{n},gw_1,{a},CNY,alipay,success,2026-11-20T03:00:00Z" for n, a in lines
        ]
        path = self.tmp / f"settlement-{uuid.uuid4().hex[:6]}.csv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return path

    def token(self, *roles: str) -> str:
        return encode(staff_claims("zhao", roles or ("finance",), 600), SECRET)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    for name in ("REFUNDS_JWT_SECRET", "REFUNDS_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = PayoutSettings(env="test", data_dir=tmp_path, jwt_secret=SECRET)
    app = PayoutApplication(env=store_env(settings, "payout"))
    http = http_api(app, settings)
    try:
        with serving(http) as url:
            yield Served(url, app, tmp_path)
    finally:
        app.close()


def reconcile(served: Served, path: Path, *extra: str) -> int:
    return main(
        ["payouts", "reconcile", str(path), "--day", "2026-11-20", "--url", served.url, *extra]
    )


def test_all_matched_exits_0_with_a_table(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    number = served.paid(4200)
    path = served.csv((number, 4200))
    assert reconcile(served, path, "--token", served.token()) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["KIND", "MERCHANT", "REFUND", "NO", "DETAIL"]
    assert f"matched  {number}" in out
    assert "matched 1." in out and "0 mismatch(es)." in out
    # The same file again: the same report, said so.
    assert reconcile(served, path, "--token", served.token("admin")) == 0
    assert "reconciled before: the same report" in capsys.readouterr().out


def test_mismatches_exit_1_and_json_lines(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    number, unlisted = served.paid(4200), served.paid(1000)
    path = served.csv((number, 4300), ("po_" + "b" * 32, 99))
    monkeypatch.setenv("REFUNDS_JWT_SECRET", SECRET)  # the default token is signed with it
    assert reconcile(served, path, "--json") == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    *findings, summary = lines
    assert {(f["kind"], f["merchant_refund_no"]) for f in findings} == {
        ("amount_differs", number),
        ("missing_on_our_side", "po_" + "b" * 32),
        ("missing_at_provider", unlisted),
    }
    assert summary["mismatches"] == 3 and summary["created"] is True
    assert summary["id"].startswith("rc_") and summary["day"] == "2026-11-20"


def test_http_and_usage_errors_exit_2(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    path = served.csv()
    assert reconcile(served, path, "--token", served.token("auditor")) == 2
    assert "HTTP 403 Forbidden" in capsys.readouterr().err
    assert reconcile(served, path, "--token", "not-a-jwt") == 2
    assert "HTTP 401" in capsys.readouterr().err
    broken = served.tmp / "broken.csv"
    broken.write_text(f"{HEADER}\npo_1,gw,abc,CNY,alipay,success,x\n", encoding="utf-8")
    assert reconcile(served, broken, "--token", served.token()) == 2
    assert "line 2: amount 'abc'" in capsys.readouterr().err
    assert reconcile(served, served.tmp / "missing.csv", "--token", served.token()) == 2
    assert "cannot read" in capsys.readouterr().err
    closed = main(
        ["payouts", "reconcile", str(path), "--day", "2026-11-20", "--url", "http://127.0.0.1:1"]
    )
    assert closed == 2 and "cannot reach" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["payouts", "reconcile", str(path), "--day", "20/11/2026"])
    assert exit_.value.code == 2
    assert "expected YYYY-MM-DD" in capsys.readouterr().err


def test_help_describes_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["payouts", "reconcile", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 all matched, 1 mismatches found, 2 usage or HTTP error" in out
    for option in ("--day", "--url", "--token", "--json"):
        assert option in out
