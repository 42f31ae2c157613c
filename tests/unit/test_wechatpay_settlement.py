"""The REFUND bill parser and the account model: exact fen, every malformed kind named by line,
every bad credential named by field."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from sandbox.wechatpay import dev_account, dev_keys
from sandbox.wechatpay.bill import HEADER, SUMMARY
from services.payout.providers.base import MalformedReport
from services.payout.providers.wechatpay import WeChatPayAccount, parse


def row(number: str, requested: str, status: str = "SUCCESS") -> str:
    fields = [
        "2026-11-01 10:00:00",
        "wx8",
        "1900000109",
        "0",
        "",
        "4200000991202103266853086457",
        "ORD-1",
        "oU",
        "JSAPI",
        "REFUND",
        "OTHERS",
        "CNY",
        "129.00",
        "0.00",
        "2026-11-05 09:59:00",
        "2026-11-05 10:00:00",
        "5000000038201905270973267885",
        number,
        requested,
        "0.00",
        "ORIGINAL",
        status,
        "goods",
        "",
        "0.00",
        "0.60%",
        "129.00",
        requested,
        "",
    ]
    return ",".join("`" + f for f in fields)


def bill(*rows: str, count: str = "", total: str = "") -> bytes:
    summary = ",".join(
        "`" + f
        for f in [count or str(len(rows)), "0", total or "0.00", "0", "0", "0", total or "0.00"]
    )
    return ("\r\n".join([HEADER, *rows, SUMMARY, summary]) + "\r\n").encode()


def test_lines_in_exact_fen() -> None:
    lines = parse(bill(row("po_1", "119.00"), row("po_2", "0.01", "REFUNDCLOSE"), total="119.01"))
    assert [(x.merchant_refund_no, x.amount, x.status, x.currency) for x in lines] == [
        ("po_1", 11900, "success", "CNY"),
        ("po_2", 1, "closed", "CNY"),
    ]
    assert lines[0].completed_at == "2026-11-05T10:00:00+08:00"
    assert lines[0].provider_reference == "5000000038201905270973267885"


GOOD = bill(row("po_1", "119.00"), total="119.00")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (GOOD.replace(b"`po_1", b"`po\r_1"), "line 2: bare CR"),
        (GOOD.decode().encode("gb18030"), "line 1: not UTF-8"),
        (GOOD.replace(b"`119.00,`0.00,`ORIGINAL", b"`119.00,`ORIGINAL"), "line 2: 28 fields"),
        (
            GOOD.replace("商户退款单号,退款金额".encode(), "退款金额,商户退款单号".encode()),
            "line 1: column 18",
        ),
        (GOOD.split(SUMMARY.encode())[0], "line 3: the file ends without its summary"),
        (
            b"merchant_refund_no,provider_reference,amount,currency\r\npo_1,x,1,CNY\r\n",
            "line 1: the sandbox gateway",
        ),
        (
            bill(row("po_1", "119.005"), total="119.00"),
            "line 2: 申请退款金额 '119.005' is not yuan",
        ),
        (bill(row("po_1", "1x9.00"), total="119.00"), "line 2: 申请退款金额 '1x9.00'"),
        (bill(row("po_1", "119.00"), total="119.01"), "line 4: 申请退款总金额"),
        (GOOD.replace(b"`po_1", b'"`po_1'), "line 2"),
    ],
)
def test_malformed_bills_name_the_line(data: bytes, expected: str) -> None:
    with pytest.raises(MalformedReport, match=expected.replace("(", r"\(")):
        parse(data)


def test_only_malformed_report_escapes() -> None:
    for data in (b"\x00\xff", b"", b"\n\n", GOOD[:200], GOOD + b"`extra\r\n", b'"a\r\n'):
        with pytest.raises(MalformedReport, match=r"^line \d+: "):
            parse(data)


def settings(**change: Any) -> dict[str, Any]:
    return {**dev_account("http://127.0.0.1:9"), **change}


def field_of(error: pydantic.ValidationError) -> list[str]:
    return [".".join(map(str, e["loc"])) for e in error.errors()]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"merchant_private_key": "not a key"}, "merchant_private_key", "neither PEM nor base64"),
        (
            {"merchant_private_key": dev_keys.PLATFORM_CERTIFICATE},
            "merchant_private_key",
            "PEM CERTIFICATE",
        ),
        ({"merchant_serial_no": "0123ABCD"}, "merchant_certificate", "has serial"),
        (
            {
                "merchant_certificate": dev_keys.PLATFORM_CERTIFICATE,
                "merchant_serial_no": dev_keys.PLATFORM_SERIAL_NO,
            },
            "merchant_certificate",
            "another key",
        ),
        ({"apiv3_key": "short"}, "apiv3_key", "exactly 32 bytes"),
        ({"platform_public_key_id": None}, "platform_public_key_id", "required"),
        (
            {"platform_public_key": dev_keys.MERCHANT_CERTIFICATE},
            "platform_public_key",
            "PEM CERTIFICATE",
        ),
        (
            {"platform_certificate": dev_keys.MERCHANT_CERTIFICATE},
            "platform_certificate",
            "merchant's own key",
        ),
        (
            {
                "platform_public_key": None,
                "platform_public_key_id": None,
                "platform_certificate": None,
            },
            "platform_certificate",
            "is required",
        ),
        ({"api_base": "ftp://x"}, "api_base", "http(s)"),
    ],
)
def test_bad_credentials_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(pydantic.ValidationError) as error:
        WeChatPayAccount(**settings(**change))
    assert field_of(error.value) == [field]
    assert words in str(error.value)


def test_missing_secret_names_the_field() -> None:
    data = settings()
    del data["apiv3_key"]
    with pytest.raises(pydantic.ValidationError) as error:
        WeChatPayAccount(**data)
    assert field_of(error.value) == ["apiv3_key"]


def test_base64_der_keys_are_accepted_and_the_summary_has_no_secret() -> None:
    body = "".join(dev_keys.MERCHANT_PRIVATE_KEY.strip().splitlines()[1:-1])
    account = WeChatPayAccount(**settings(merchant_private_key=body))
    summary = account.summary()
    assert summary["apiv3_key_last4"] == dev_keys.APIV3_KEY[-4:]
    assert len(summary["merchant_key_sha256"]) == 64
    assert dev_keys.APIV3_KEY not in repr(summary) and "PRIVATE" not in repr(summary)
    assert summary["platform_public_key_sha256"] == summary["platform_certificate_sha256"]
