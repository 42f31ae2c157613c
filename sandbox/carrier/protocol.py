"""Kuaidi100's tracking protocol as the sandbox speaks it: codes, carriers, stages, signatures."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

STORE_FILE = "carrier.sqlite"
# Fixed, public development credentials: they prove nothing outside a sandbox.
DEFAULT_KEY = "sandbox-kuaidi100-key"
DEFAULT_CUSTOMER = "SANDBOXCUSTOMER000000000000000000"
NUMBER_MIN, NUMBER_MAX = 6, 32  # Kuaidi100: a tracking number is 6 to 32 characters

# Subscription answers (POST /poll), as Kuaidi100 documents them.
SUBSCRIBE_CODES = {
    "200": "提交成功",
    "500": "服务器错误",
    "501": "重复订阅",
    "600": "您不是合法的订阅者（即授权Key出错）",
    "700": "订阅方的订阅数据存在错误（如不支持的快递公司、单号为空、单号超长等）或错误的回调地址",
}
# Real-time query answers (POST /poll/query.do) when there is no trail to give.
QUERY_CODES = {
    "400": "提交的数据不完整，或者贵公司没授权",
    "500": "查询无结果，请隔段时间再查",
    "501": "服务器错误",
    "502": "服务器繁忙",
    "503": "验证签名失败",
}
# What the receiver of a push must answer for it to count as delivered.
PUSH_ACCEPTED = {"result": True, "returnCode": "200"}

# Kuaidi100's `state` of a shipment (the main states the sandbox emits).
STATE_IN_TRANSIT = "0"  # 在途
STATE_PICKED_UP = "1"  # 揽收
STATE_DELIVERED = "3"  # 签收
STATE_OUT_FOR_DELIVERY = "5"  # 派件
STATE_NAMES = {"0": "在途", "1": "揽收", "3": "签收", "5": "派件"}

Stage = Literal["created", "picked_up", "in_transit", "out_for_delivery", "delivered"]
STAGES: tuple[Stage, ...] = ("created", "picked_up", "in_transit", "out_for_delivery", "delivered")
PushStatus = Literal["polling", "shutdown", "abort"]


@dataclass(frozen=True)
class Step:
    """One stage's tracking event: Kuaidi100's state code and the courier's wording."""

    state: str
    context: str
    area: str


STEPS: dict[Stage, Step] = {
    "picked_up": Step(STATE_PICKED_UP, "【深圳市】快件已被【南山营业部】揽收", "广东省,深圳市"),
    "in_transit": Step(
        STATE_IN_TRANSIT, "快件已到达【杭州转运中心】，正发往下一站", "浙江省,杭州市"
    ),
    "out_for_delivery": Step(
        STATE_OUT_FOR_DELIVERY, "【杭州市】快件正在派送中，派送员：王师傅", "浙江省,杭州市"
    ),
    "delivered": Step(STATE_DELIVERED, "【杭州市】快件已签收，签收人：本人", "浙江省,杭州市"),
}


@dataclass(frozen=True)
class Carrier:
    """A carrier code the sandbox knows, the number format it accepts and how it mints one."""

    code: str
    name: str
    pattern: re.Pattern[str]
    prefix: str
    digits: int

    def accepts(self, number: str) -> bool:
        return bool(self.pattern.fullmatch(number))

    def mint(self) -> str:
        body = "".join(secrets.choice("0123456789") for _ in range(self.digits))
        if self.code == "ems":
            return f"E{secrets.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{body}CN"
        return self.prefix + body


def _carrier(code: str, name: str, pattern: str, prefix: str, digits: int) -> Carrier:
    return Carrier(code, name, re.compile(pattern), prefix, digits)


# The sandbox's rules, modelled on the carriers' common formats (not a carrier's guarantee).
CARRIERS: dict[str, Carrier] = {
    carrier.code: carrier
    for carrier in (
        _carrier("shunfeng", "顺丰速运", r"SF\d{12,13}", "SF", 13),
        _carrier("yuantong", "圆通速递", r"YT\d{13}", "YT", 13),
        _carrier("zhongtong", "中通快递", r"\d{12,14}", "78", 12),
        _carrier("yunda", "韵达快递", r"\d{13,15}", "43", 11),
        _carrier("jd", "京东物流", r"JD[0-9A-Z]{13,15}", "JDV", 12),
        _carrier("ems", "EMS", r"[A-Z]{2}\d{9}[A-Z]{2}|\d{13}", "", 9),
    )
}


def normalize_number(number: str) -> str:
    """Numbers are matched case-insensitively and kept upper-case (em263999513jp → EM…JP)."""
    return number.strip().upper()


def md5_upper(text: str) -> str:
    """Kuaidi100's signature primitive: the upper-case hex MD5 of the UTF-8 text."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def push_sign(param: str, salt: str) -> str:
    """A push's `sign`: MD5(param + salt), param being the exact JSON text pushed."""
    return md5_upper(param + salt)


def query_sign(param: str, key: str, customer: str) -> str:
    """A real-time query's `sign`: MD5(param + key + customer)."""
    return md5_upper(param + key + customer)


def credentials_from_env() -> tuple[str, str]:
    """The authorization key and customer id, from SANDBOX_CARRIER_KEY/_CUSTOMER."""
    key = os.environ.get("SANDBOX_CARRIER_KEY", DEFAULT_KEY)
    customer = os.environ.get("SANDBOX_CARRIER_CUSTOMER", DEFAULT_CUSTOMER)
    if not key.strip() or not customer.strip():
        raise ValueError("SANDBOX_CARRIER_KEY and SANDBOX_CARRIER_CUSTOMER must not be empty")
    return key, customer


Counter = Annotated[int, Field(strict=True, ge=0)]
Millis = Annotated[int, Field(strict=True, ge=0, le=3_600_000)]


class ShipmentRequest(BaseModel):
    """Test control: a shipment of `company`; without `number` the sandbox mints a valid one."""

    model_config = ConfigDict(extra="forbid")

    company: Annotated[str, Field(strict=True, min_length=1, max_length=32)]
    number: Annotated[str, Field(strict=True, min_length=1, max_length=NUMBER_MAX)] | None = None


class AdvanceRequest(BaseModel):
    """Test control: move to the next stage, or on to `to` (each stage passed adds its event)."""

    model_config = ConfigDict(extra="forbid")

    to: Stage | None = None


class ControlRequest(BaseModel):
    """Fault switches; omitted fields keep their value (see sandbox/CARRIER.md)."""

    model_config = ConfigDict(extra="forbid")

    drop_push_next: Counter | None = None
    duplicate_push_next: Counter | None = None
    stale_push_next: Counter | None = None
    wrong_salt_next: Counter | None = None
    query_fail_next: Counter | None = None
    query_fail_code: Literal["500", "501", "502"] | None = None
    query_http_error_next: Counter | None = None
    query_http_status: Annotated[int, Field(strict=True, ge=500, le=599)] | None = None
    push_max_attempts: Annotated[int, Field(strict=True, ge=1, le=20)] | None = None
    push_retry_ms: Millis | None = None
    reset: Annotated[bool, Field(strict=True)] = False
