"""Stripe's itemized balance change report into settlement lines; anything else is a
MalformedReport naming the line, never another exception."""

from __future__ import annotations

import pytest

from sandbox.stripe.report import render
from services.payout.providers.base import MalformedReport
from services.payout.providers.stripe.settlement import COLUMNS, parse

HEADER = ",".join(COLUMNS)
BARE_CR = "REFUND\rFOR"
QUOTED_CR = '"REFUND\rFOR"'


def txn(number: str, amount: int, currency: str = "usd", category: str = "refund") -> dict:  # type: ignore[type-arg]
    return {
        "id": f"txn_{number}", "created": 1_736_155_800, "currency": currency, "amount": amount,
        "category": category, "source_id": f"re_{number}", "charge_id": "ch_1",
        "payment_intent_id": "pi_1", "merchant_refund_no": f"po_{number}",
    }  # fmt: skip


def report() -> bytes:
    return render(
        [
            txn("a", -1250),
            txn("b", -1500, "jpy"),
            txn("c", -1230, "kwd"),
            txn("d", 500, category="refund_failure"),
        ]
    )


def test_the_emulators_report_parses_to_exact_minor_units() -> None:
    lines = parse(report())
    assert [(x.merchant_refund_no, x.amount, x.currency, x.status) for x in lines] == [
        ("po_a", 1250, "USD", "success"),
        ("po_b", 1500, "JPY", "success"),
        ("po_c", 1230, "KWD", "success"),
        ("po_d", 500, "USD", "closed"),
    ]
    assert lines[0].provider_reference == "re_a" and lines[0].method == "card"
    assert lines[0].completed_at == "2025-01-06T09:30:00Z"


def test_other_categories_are_skipped_and_crlf_and_bom_are_fine() -> None:
    text = report().decode().replace("\n", "\r\n")
    charge = "txn_z,2025-01-06 09:00:00,usd,20.00,0.59,19.41,charge,ch_1,,ch_1,pi_1,card,\r\n"
    lines = parse(b"\xef\xbb\xbf" + (text + charge).encode())
    assert len(lines) == 4


def line_of(data: bytes) -> str:
    with pytest.raises(MalformedReport) as refused:
        parse(data)
    return str(refused.value)


def row(**changes: str) -> str:
    values = dict(zip(COLUMNS, report().decode().splitlines()[1].split(","), strict=True))
    values.update(changes)
    return ",".join(values[c] for c in COLUMNS)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (f"{HEADER}\n{row()}\n{row(description=BARE_CR)}\n".encode(), "line 3: carriage"),
        (f"{HEADER}\n{row(description=QUOTED_CR)}\n".encode(), "line 2: carriage"),
        (f"{HEADER}\n{row(description='Remboursé')}\n".encode("latin-1"), "line 2: not UTF-8"),
        (f"{HEADER}\n{row()}\n".encode("utf-16"), "line 1: not UTF-8"),
        (f"{HEADER}\n{row()}\n".encode()[:-30], "line 2: 9 columns"),
        (",".join(reversed(COLUMNS)).encode() + b"\n", "line 1: not Stripe"),
        (b"merchant_refund_no,provider_reference,amount,currency,method,status,completed_at\n"
         b"po_1,gw_1,1250,CNY,card,success,2025-01-06T09:30:00.000000Z\n", "line 1: not Stripe"),
        (b"", "line 1: empty"),
        (f"{HEADER}\n{row(gross='-12.5x')}\n".encode(), "line 2: gross"),
        (f"{HEADER}\n{row(gross='-12.505')}\n".encode(), "line 2: gross"),
        (f"{HEADER}\n{row(gross='NaN')}\n".encode(), "line 2: gross"),
        (f"{HEADER}\n{row(gross='12.50')}\n".encode(), "line 2: gross 12.50 has the wrong sign"),
        (f"{HEADER}\n{row(currency='xyz')}\n".encode(), "line 2: gross"),
        (f"{HEADER}\n{row(created_utc='2025-01-06T09:30:00Z')}\n".encode(), "line 2: created_utc"),
        (f"{HEADER}\n{row(source_id='ch_1')}\n".encode(), "line 2: source_id"),
        (f"{HEADER}\n{row()}\n{row(**{'refund_metadata[merchant_refund_no]': ''})}\n".encode(),
         "line 3: refund without"),
        (f'{HEADER}\n{row()}\n"unterminated,{row()}'.encode(), "line 3: "),
    ],
)  # fmt: skip
def test_malformed_reports_name_the_line(data: bytes, expected: str) -> None:
    assert line_of(data).startswith(expected)
