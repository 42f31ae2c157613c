"""Customer message templates per step, channel and locale (zh-CN, en): Jinja2 files in
`templates/`, rendered with locale-aware money and dates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, UndefinedError

from services.notify.messages import returns
from services.notify.messages.formatting import (
    LOCALES,
    format_date,
    format_money,
    in_locale,
    resolve_locale,
)
from services.notify.messages.steps import CHANNELS, STEPS, occurrence_of, step_of
from shared.money import Money

METHODS = {
    "zh-CN": {
        "card": "银行卡",
        "alipay": "支付宝",
        "wechat_pay": "微信支付",
        "bank_transfer": "银行账户",
        "store_balance": "账户余额",
    },
    "en": {
        "card": "card",
        "alipay": "Alipay account",
        "wechat_pay": "WeChat Pay account",
        "bank_transfer": "bank account",
        "store_balance": "store balance",
    },
}

TEMPLATE_DIR = Path(__file__).with_name("templates")
# The blocks each channel's files hold: e-mail a subject, plain text and HTML; an SMS only
# its text; an in-app feed item a title (`subject`) and a body (`text`).
BLOCKS = {"email": ("subject", "text", "html"), "sms": ("text",), "in_app": ("subject", "text")}
_EXPECTED = tuple(
    (step, channel, locale) for step in STEPS for channel in CHANNELS for locale in LOCALES
)
_FILE = re.compile(r"^(?P<step>[a-z_]+)\.(?P<channel>[a-z_]+)\.(?P<locale>[A-Za-z-]+)\.j2$")
_VERSION = re.compile(r"\A\{#-?\s*version:\s*(\d+)")

# One file per step, channel and locale, `<step>.<channel>.<locale>.j2`, opening with a
# `{# version: N #}` comment and holding exactly the blocks BLOCKS names for its channel.
# The same file is compiled twice: plain text never escaped, HTML always autoescaped, so
# that a value a customer typed can never become markup in the HTML part. Each file is
# compiled once per process (`auto_reload=False`: no stat of the file per message), like
# TEMPLATES, whose versions are read once at import.
_TEXT = Environment(  # plain text and subjects only: escaping would corrupt them
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=False,  # noqa: S701
    undefined=StrictUndefined,
    auto_reload=False,
)
_HTML = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=StrictUndefined,
    auto_reload=False,
)


@dataclass(frozen=True)
class Template:
    """One template file: what it is for and the version recorded with every message sent."""

    step: str
    channel: str
    locale: str
    version: int

    @property
    def filename(self) -> str:
        return f"{self.step}.{self.channel}.{self.locale}.j2"

    @property
    def name(self) -> str:
        return f"{self.step}.{self.channel}.{self.locale}@{self.version}"


@dataclass(frozen=True)
class Rendering:
    subject: str  # e-mail subject or in-app title; "" for an SMS
    body: str  # e-mail: plain text ending in a newline; SMS and in-app: the text as shown
    locale: str
    template: str  # e.g. "paid.email.en@1": which text, so a complaint can be traced to it
    html: str | None = None  # e-mail only


class TemplateSetError(ValueError):
    """The template folder does not hold exactly one well-formed file per step, channel
    and locale."""


def load(directory: Path) -> dict[tuple[str, str, str], Template]:
    """Every template in ``directory``; TemplateSetError unless every step, channel and
    locale has exactly one file, with a version and its channel's blocks, and nothing else."""
    env = Environment(loader=FileSystemLoader(directory), autoescape=False)  # noqa: S701
    found: dict[tuple[str, str, str], Template] = {}
    for path in sorted(directory.glob("*.j2")):
        match = _FILE.match(path.name)
        version = _VERSION.match(path.read_text(encoding="utf-8"))
        if match is None or version is None:
            raise TemplateSetError(
                f"{path.name}: expected <step>.<channel>.<locale>.j2 with a version"
            )
        key = (match["step"], match["channel"], match["locale"])
        if key not in _EXPECTED:
            raise TemplateSetError(f"{path.name}: unknown step, channel or locale")
        blocks = set(env.get_template(path.name).blocks)
        if blocks != set(BLOCKS[key[1]]):
            wanted = ", ".join(BLOCKS[key[1]])
            raise TemplateSetError(f"{path.name}: has blocks {sorted(blocks)}, needs {wanted}")
        found[key] = Template(*key, int(version[1]))
    missing = [Template(*key, 0).filename for key in _EXPECTED if key not in found]
    if missing:
        raise TemplateSetError(f"missing templates in {directory}: {', '.join(missing)}")
    return found


TEMPLATES = load(TEMPLATE_DIR)  # at import, so a missing or broken file stops the service

# Facts shaped like those notify stores for each step, to look at a template with
# (`refunds notify render`); the reason carries markup to show that HTML escapes it.
SAMPLE_REFERENCE = "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"
SAMPLE_FACTS: dict[str, dict[str, Any]] = {
    "received": {"amount": {"amount": 12900, "currency": "CNY"}, "order_id": "ORD-1001"},
    "approved": {
        "amount": {"amount": 12900, "currency": "CNY"},
        "order_id": "ORD-1001",
        "method": "alipay",
    },
    "rejected": {
        "order_id": "ORD-1001",
        "rule": "R-RETURN-WINDOW-30D",
        "policy_version": "2026.1",
        "explanation": {
            "zh-CN": "已超过30天退货期限 <b>（示例）</b>",
            "en": "The 30-day return window has passed <b>(sample)</b>",
        },
    },
    "paid": {
        "amount": {"amount": 12900, "currency": "CNY"},
        "method": "wechat_pay",
        "paid_at": "2026-11-04T09:00:00+00:00",
        "expected_arrival": "2026-11-05T09:00:00+00:00",
    },
    "payout_failed": {"amount": {"amount": 12900, "currency": "CNY"}, "method": "card"},
    "evidence_requested": {
        "order_id": "ORD-1001",
        "missing": ["a photo of the stain", "the delivery note"],
        "message": "Please photograph the front of the T-shirt in daylight.",
    },
    "withdrawn": {"order_id": "ORD-1001"},
    "in_review": {"order_id": "ORD-1001", "deadline": "2026-11-06T18:00:00+08:00"},
    "compensation_offered": {
        "order_id": "ORD-1001",
        "coupon": {"amount": 2000, "currency": "CNY"},
    },
    **returns.SAMPLE_FACTS,
}


def _values(facts: Mapping[str, Any], locale: str, reference: str) -> dict[str, Any]:
    values: dict[str, Any] = {"reference": reference, "order_id": str(facts.get("order_id", "—"))}
    if facts.get("why") in ("appeal", "evidence"):  # in review again, and why
        values["why"] = str(facts["why"])
    if "amount" in facts:
        values["amount"] = format_money(Money(**facts["amount"]), locale)
    if "method" in facts:
        values["method"] = METHODS[locale].get(facts["method"], facts["method"])
    if "expected_arrival" in facts:
        values["arrival"] = format_date(facts["expected_arrival"], locale)
    if "rule" in facts:
        values["rule"] = str(facts["rule"])
    if "explanation" in facts:
        values["explanation"] = in_locale(facts["explanation"], locale)
    if "missing" in facts:
        values["missing"] = ("、" if locale == "zh-CN" else ", ").join(facts["missing"])
    if "message" in facts:
        values["message"] = str(facts["message"])
    if "coupon" in facts:
        values["coupon"] = format_money(Money(**facts["coupon"]), locale)
    if facts.get("deadline") is not None:  # None: no decision date is promised
        values["deadline"] = format_date(facts["deadline"], locale)
    return values | returns.return_values(facts, locale)


def render(
    step: str,
    locale: str | None,
    facts: Mapping[str, Any],
    *,
    reference: str,
    channel: str = "email",
) -> Rendering:
    """The message of one step on one channel; KeyError for an unknown step or channel, or
    when the facts lack what its text states. `step` may name a later occurrence
    (`rejected#2`): its step's template says so where its wording differs (`again`)."""
    chosen = resolve_locale(locale)
    template = TEMPLATES[step_of(step), channel, chosen]
    blocks = BLOCKS[channel]
    values = _values(facts, chosen, reference)
    if occurrence_of(step) > 1:
        values["again"] = "yes"
    try:
        subject = _block(_TEXT, template, "subject", values) if "subject" in blocks else ""
        body = _block(_TEXT, template, "text", values) + ("\n" if channel == "email" else "")
        html = _block(_HTML, template, "html", values) + "\n" if "html" in blocks else None
    except UndefinedError as error:
        raise KeyError(f"{template.filename}: {error.message}") from error
    return Rendering(subject=subject, body=body, locale=chosen, template=template.name, html=html)


def _block(env: Environment, template: Template, block: str, values: Mapping[str, Any]) -> str:
    compiled = env.get_template(template.filename)
    context = compiled.new_context(dict(values))
    return "".join(compiled.blocks[block](context)).strip()
