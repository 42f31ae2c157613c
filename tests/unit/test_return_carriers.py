"""Return shipments: tracking-number rules, Kuaidi100 push signatures, states and trails.

Signatures are made here with an independent MD5, never with the adapter's own helper.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.review.returns.carriers import (
    BadPushSignature,
    Kuaidi100,
    MalformedPush,
    PermanentCarrierError,
    TransientCarrierError,
)
from services.review.returns.trail import (
    KUAIDI100_STATES,
    TrackingEvent,
    Trail,
    state_from_kuaidi100,
    trail_from_kuaidi100,
)
from services.review.settings import ReviewSettings
from shared.vocabulary import CARRIER_CODES, TRACKING_FORMATS, tracking_number_problem

SALT = "unit-salt"
KEY = "unit-key"
CUSTOMER = "UNITCUSTOMER"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


# --- Tracking numbers -------------------------------------------------------------------

GOOD = {
    "shunfeng": ["SF123456789012", "SF1234567890123", "sf1234567890123"],
    "yuantong": ["YT1234567890123", " yt1234567890123 "],
    "zhongtong": ["781234567890", "78123456789012"],
    "yunda": ["4312345678901", "431234567890123"],
    "jd": ["JDV123456789012", "JD1234567890ABCDE", "jdx0000000000000"],
    "ems": ["EA123456789CN", "em263999513jp", "1234567890123"],
}
BAD = {
    "shunfeng": ["SF12345678901", "SF12345678901234", "YT1234567890123", "1234567890123"],
    "yuantong": ["YT123456789012", "SF1234567890123", "YT12345678901234"],
    "zhongtong": ["12345678901", "123456789012345", "ZT1234567890"],
    "yunda": ["123456789012", "1234567890123456", "YD1234567890123"],
    "jd": ["JD123456789012", "JD12345678901234567", "JDV12345678901-", "SF1234567890123"],
    "ems": ["EA123456789C", "E1123456789CN", "123456789012", "EA12345678CN"],
}


def test_every_carrier_code_has_a_format_and_cases_on_both_sides() -> None:
    assert set(TRACKING_FORMATS) == set(CARRIER_CODES) == set(GOOD) == set(BAD)


@pytest.mark.parametrize("code,number", [(c, n) for c, ns in GOOD.items() for n in ns])
def test_a_number_fitting_its_carrier_has_no_problem(code: str, number: str) -> None:
    assert tracking_number_problem(code, number) is None


@pytest.mark.parametrize("code,number", [(c, n) for c, ns in BAD.items() for n in ns])
def test_a_number_not_fitting_its_carrier_says_why(code: str, number: str) -> None:
    problem = tracking_number_problem(code, number)
    assert problem is not None
    assert f"is not a {code} ({TRACKING_FORMATS[code].name}) number" in problem


def test_unknown_codes_and_lengths_are_named() -> None:
    unknown = tracking_number_problem("SHUNFENG", "SF1234567890123")
    assert unknown is not None and "unknown carrier code 'SHUNFENG'" in unknown
    assert "shunfeng" in unknown
    short = tracking_number_problem("ems", "12345")
    assert short == "a tracking number has 6-32 characters, got 5"
    long = tracking_number_problem("jd", "JD" + "1" * 31)
    assert long == "a tracking number has 6-32 characters, got 33"


# --- Push signatures --------------------------------------------------------------------


def adapter(transport: httpx.AsyncBaseTransport | None = None) -> Kuaidi100:
    return Kuaidi100(
        "http://carrier.test", key=KEY, customer=CUSTOMER, salt=SALT, transport=transport
    )


def event(time: str, status: str, context: str | None = None) -> dict[str, str]:
    return {
        "context": context or f"{status} at {time}",
        "time": time,
        "ftime": time,
        "status": status,
        "areaName": "浙江省,杭州市",
    }


STEPS = [
    event("2024-05-01 09:00:00", "揽收"),
    event("2024-05-01 18:00:00", "在途"),
    event("2024-05-02 08:00:00", "派件"),
    event("2024-05-02 11:30:00", "签收"),
]
STATES = ["1", "0", "5", "3"]


def param(upto: int, number: str = "SF1234567890123", status: str | None = None) -> str:
    state = STATES[upto - 1] if upto else "0"
    body = {
        "status": status or ("shutdown" if state == "3" else "polling"),
        "message": "",
        "autoCheck": "0",
        "comOld": "",
        "comNew": "",
        "lastResult": {
            "message": "ok",
            "state": state,
            "status": "200",
            "condition": "F00",
            "ischeck": "1" if state == "3" else "0",
            "com": "shunfeng",
            "nu": number,
            "data": list(reversed(STEPS[:upto])),  # newest first, as Kuaidi100 sends it
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def push(upto: int, salt: str = SALT, **kwargs: Any) -> dict[str, str]:
    text = param(upto, **kwargs)
    return {"param": text, "sign": md5(text + salt)}


def test_a_push_signed_with_our_salt_is_read() -> None:
    trail = adapter().parse_push(push(4))
    assert (trail.carrier, trail.number, trail.state) == (
        "shunfeng",
        "SF1234567890123",
        "delivered",
    )
    assert trail.delivered and trail.push_status == "shutdown" and len(trail.events) == 4
    assert [e.status for e in trail.newest_first()] == ["签收", "派件", "在途", "揽收"]
    assert trail.latest is not None and trail.latest.time.isoformat() == "2024-05-02T11:30:00+08:00"
    lower = push(1)
    lower["sign"] = lower["sign"].lower()  # the same digest, written in lower case
    assert adapter().parse_push(lower).state == "picked_up"


def test_a_push_with_a_wrong_salt_a_tampered_param_or_no_sign_is_refused() -> None:
    with pytest.raises(BadPushSignature):
        adapter().parse_push(push(4, salt="not-our-salt"))
    tampered = push(2)
    tampered["param"] = tampered["param"].replace('"state":"0"', '"state":"3"')
    with pytest.raises(BadPushSignature):
        adapter().parse_push(tampered)
    with pytest.raises(BadPushSignature):
        adapter().parse_push({"param": param(4)})
    with pytest.raises(BadPushSignature):
        adapter().parse_push({"param": param(4), "sign": ""})
    with pytest.raises(BadPushSignature):
        adapter().parse_push({"param": param(4), "sign": "签名"})  # not even ASCII


def test_a_malformed_push_is_refused_even_when_signed() -> None:
    def signed(text: str) -> dict[str, str]:
        return {"param": text, "sign": md5(text + SALT)}

    with pytest.raises(MalformedPush, match="needs a `param`"):
        adapter().parse_push({"sign": md5(SALT)})
    with pytest.raises(MalformedPush, match="not JSON"):
        adapter().parse_push(signed("{not json"))
    with pytest.raises(MalformedPush, match="object"):
        adapter().parse_push(signed("[1]"))
    with pytest.raises(MalformedPush, match="status"):
        adapter().parse_push(signed(param(2, status="resumed")))
    no_result = json.loads(param(2))
    del no_result["lastResult"]
    with pytest.raises(MalformedPush, match="lastResult"):
        adapter().parse_push(signed(json.dumps(no_result)))
    bad_time = json.loads(param(2))
    bad_time["lastResult"]["data"][0]["time"] = "yesterday"
    with pytest.raises(MalformedPush, match="YYYY-MM-DD"):
        adapter().parse_push(signed(json.dumps(bad_time)))


def test_an_adapter_without_a_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="salt"):
        Kuaidi100("http://carrier.test", key=KEY, customer=CUSTOMER, salt="")


# --- States -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code,state",
    [
        ("0", "in_transit"),
        ("1", "picked_up"),
        ("2", "problem"),
        ("3", "delivered"),
        ("4", "returning"),
        ("5", "out_for_delivery"),
        ("6", "returning"),
        ("7", "in_transit"),
        ("8", "in_transit"),
        ("14", "refused"),
        ("101", "picked_up"),
        ("301", "delivered"),
        ("304", "delivered"),
        ("1002", "in_transit"),
        ("9", "unknown"),
        ("99", "unknown"),
        ("", "unknown"),
        ("3x", "unknown"),
    ],
)
def test_kuaidi100_states_map_to_ours(code: str, state: str) -> None:
    assert state_from_kuaidi100(code) == state


def test_only_state_3_and_its_finer_codes_mean_delivered() -> None:
    assert [code for code, state in KUAIDI100_STATES.items() if state == "delivered"] == ["3"]


def test_a_trail_without_events_is_pending() -> None:
    result = json.loads(param(0))["lastResult"]
    assert trail_from_kuaidi100(result).state == "pending"


# --- Trails: duplicates and stale pushes add nothing ------------------------------------


def test_a_duplicate_push_adds_nothing() -> None:
    first = adapter().parse_push(push(2))
    again = adapter().parse_push(push(2))
    assert again.news_since(first) == frozenset()
    assert not again.is_news_to(first)
    assert again.merged(first) == first


def test_an_older_push_after_a_newer_one_changes_nothing() -> None:
    newer = adapter().parse_push(push(4))
    older = adapter().parse_push(push(2))
    assert older.news_since(newer) == frozenset()
    assert not older.is_news_to(newer)
    assert older.merged(newer) == newer and newer.merged(newer).delivered


def test_a_newer_push_brings_its_events_and_state() -> None:
    older = adapter().parse_push(push(2))
    newer = adapter().parse_push(push(4))
    news = newer.news_since(older)
    assert sorted(e.status for e in news) == ["派件", "签收"]
    assert newer.is_news_to(older) and newer.is_news_to(None)
    merged = newer.merged(older)
    assert merged.delivered and merged.events == newer.events
    assert newer.news_since(None) == newer.events


def test_events_are_one_per_time_and_context_whatever_else_differs() -> None:
    a = TrackingEvent.from_kuaidi100(event("2024-05-01 09:00:00", "揽收", "picked up"))
    b = TrackingEvent.from_kuaidi100({**event("2024-05-01 09:00:00", "在途", "picked up")})
    c = TrackingEvent.from_kuaidi100(event("2024-05-01 09:00:00", "揽收", "another parcel scan"))
    assert a == b and len({a, b, c}) == 2


def test_a_dropped_push_is_made_up_by_the_next_one_and_abort_is_kept() -> None:
    first = adapter().parse_push(push(1))
    third = adapter().parse_push(push(3))  # the push of step 2 never came
    assert len(third.news_since(first)) == 2
    known = third.merged(first)
    gave_up = adapter().parse_push(push(3, status="abort"))
    assert gave_up.news_since(known) == frozenset() and gave_up.is_news_to(known)
    assert gave_up.merged(known).push_status == "abort"
    assert gave_up.merged(known).state == "out_for_delivery"


def test_trails_of_different_shipments_do_not_merge() -> None:
    one = adapter().parse_push(push(2))
    other = adapter().parse_push(push(2, number="SF9999999999999"))
    with pytest.raises(ValueError, match="different shipments"):
        one.merged(other)


# --- Requests over HTTP (a mock transport) ----------------------------------------------


def recording(answer: Any, status: int = 200) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(status, json=answer)

    return httpx.MockTransport(handle), seen


def form_of(request: httpx.Request) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(request.content.decode()))


async def test_subscribe_sends_key_number_callback_and_salt() -> None:
    transport, seen = recording({"result": True, "returnCode": "200", "message": "提交成功"})
    await adapter(transport).subscribe("ems", "ea123456789cn", "https://review.test/kd100")
    form = form_of(seen[0])
    assert seen[0].url.path == "/poll" and form["schema"] == "json"
    assert json.loads(form["param"]) == {
        "company": "ems",
        "number": "EA123456789CN",
        "key": KEY,
        "parameters": {"callbackurl": "https://review.test/kd100", "salt": SALT},
    }


@pytest.mark.parametrize(
    "answer,status,error",
    [
        ({"result": False, "returnCode": "501", "message": "重复订阅"}, 200, None),
        ({"result": False, "returnCode": "600", "message": "key"}, 200, PermanentCarrierError),
        ({"result": False, "returnCode": "700", "message": "data"}, 200, PermanentCarrierError),
        (
            {"result": False, "returnCode": "500", "message": "服务器错误"},
            200,
            TransientCarrierError,
        ),
        ({}, 503, TransientCarrierError),
        ({}, 429, TransientCarrierError),
        ({}, 404, PermanentCarrierError),
        (httpx.ConnectTimeout("slow"), 200, TransientCarrierError),
    ],
)
async def test_subscription_answers(
    answer: Any, status: int, error: type[Exception] | None
) -> None:
    transport, _ = recording(answer, status)
    if error is None:
        await adapter(transport).subscribe("shunfeng", "SF1234567890123", "http://r.test/")
    else:
        with pytest.raises(error):
            await adapter(transport).subscribe("shunfeng", "SF1234567890123", "http://r.test/")


async def test_a_bad_number_is_refused_before_any_request() -> None:
    transport, seen = recording({"result": True, "returnCode": "200"})
    with pytest.raises(PermanentCarrierError, match="is not a yuantong"):
        await adapter(transport).subscribe("yuantong", "SF1234567890123", "http://r.test/")
    with pytest.raises(PermanentCarrierError, match="unknown carrier code"):
        await adapter(transport).query("dhl", "1234567890")
    assert seen == []


async def test_query_is_signed_with_key_and_customer_and_answers_a_trail() -> None:
    transport, seen = recording(json.loads(param(3))["lastResult"])
    trail = await adapter(transport).query("shunfeng", "sf1234567890123")
    form = form_of(seen[0])
    assert seen[0].url.path == "/poll/query.do" and form["customer"] == CUSTOMER
    assert json.loads(form["param"]) == {"com": "shunfeng", "num": "SF1234567890123"}
    assert form["sign"] == md5(form["param"] + KEY + CUSTOMER)
    assert trail.state == "out_for_delivery" and trail.push_status is None
    assert trail.events == adapter().parse_push(push(3)).events


@pytest.mark.parametrize(
    "answer,status,error",
    [
        (
            {"result": False, "returnCode": "502", "message": "服务器繁忙"},
            200,
            TransientCarrierError,
        ),
        (
            {"result": False, "returnCode": "501", "message": "服务器错误"},
            200,
            TransientCarrierError,
        ),
        (
            {"result": False, "returnCode": "503", "message": "验证签名失败"},
            200,
            PermanentCarrierError,
        ),
        ({"result": False, "returnCode": "400", "message": "没授权"}, 200, PermanentCarrierError),
        ({}, 503, TransientCarrierError),
        (httpx.ReadTimeout("slow"), 200, TransientCarrierError),
        (
            {"com": "shunfeng", "nu": "SF9999999999999", "state": "0", "data": []},
            200,
            PermanentCarrierError,
        ),
        ({"com": "shunfeng", "nu": "SF1234567890123", "data": "x"}, 200, PermanentCarrierError),
    ],
)
async def test_query_failures(answer: Any, status: int, error: type[Exception]) -> None:
    transport, _ = recording(answer, status)
    with pytest.raises(error):
        await adapter(transport).query("shunfeng", "SF1234567890123")


async def test_query_without_events_is_a_pending_trail() -> None:
    transport, _ = recording({"result": False, "returnCode": "500", "message": "查询无结果"})
    trail = await adapter(transport).query("jd", "JDV123456789012")
    assert trail == Trail(carrier="jd", number="JDV123456789012", state="pending")


# --- Settings ---------------------------------------------------------------------------


def test_carrier_settings_refuse_public_values_in_production() -> None:
    dev = ReviewSettings()
    assert dev.carrier_url == "http://127.0.0.1:8040" and dev.carrier_salt
    production = {
        "env": "production",
        "audit_signing_key": "A" * 43 + "=",
        "jwt_secret": "j" * 40,
        "keystore_master_key": base64.b64encode(b"k" * 32).decode(),
        "carrier_key": "real-kuaidi100-key",
        "carrier_customer": "REALCUSTOMER",
        "carrier_salt": "real-salt-0123",
    }
    assert ReviewSettings(**production).carrier_salt == "real-salt-0123"
    # A deployment without a carrier yet starts (docker-compose.yml sets none): nothing
    # uses one until the return lifecycle is wired.
    unconfigured = {k: v for k, v in production.items() if not k.startswith("carrier_")}
    assert ReviewSettings(**unconfigured).carrier_key is None
    for name in ("carrier_key", "carrier_customer", "carrier_salt"):
        with pytest.raises(ValidationError, match=name.upper()):
            ReviewSettings(**{**production, name: getattr(dev, name)})
        with pytest.raises(ValidationError, match=name.upper()):
            ReviewSettings(**{**production, name: "changeme"})
    with pytest.raises(ValidationError, match="carrier_url"):
        ReviewSettings(carrier_url="ftp://carrier")
