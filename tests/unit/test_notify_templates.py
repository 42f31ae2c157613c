"""Notify's Jinja2 templates: every step on every channel in every locale, SMS lengths, HTML
escaping, versions, the completeness check at load, the CLI."""

from __future__ import annotations

import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from refunds.cli import main
from services.notify.messages.sms import measure
from services.notify.messages.templates import (
    CHANNELS,
    LOCALES,
    SAMPLE_FACTS,
    SAMPLE_REFERENCE,
    STEPS,
    TEMPLATE_DIR,
    TEMPLATES,
    TemplateSetError,
    load,
    render,
    resolve_locale,
)

BRAND = {"zh-CN": "【退款通知】", "en": "Refunds: "}

REJECTION = {
    "order_id": "ORD-1001",
    "rule": "R-RETURN-WINDOW-30D",
    "explanation": {"en": "<script>alert('x')</script> & more", "zh-CN": "<script>坏</script>"},
}


def test_the_steps_notify_schedules_all_have_templates() -> None:
    assert set(STEPS) == {
        "received",
        "in_review",
        "evidence_requested",
        "approved",
        "rejected",
        "compensation_offered",
        "withdrawn",
        "paid",
        "payout_failed",
        "return_requested",
        "return_ship_by_approaching",
        "return_delivered",
        "return_received",
        "return_deadline_missed",
        "exchange_ready",
    }
    assert set(SAMPLE_FACTS) == set(STEPS)
    assert set(TEMPLATES) == {
        (step, channel, locale) for step in STEPS for channel in CHANNELS for locale in LOCALES
    }
    assert CHANNELS == ("email", "sms", "in_app")


def test_loading_fails_loudly_when_a_template_is_missing_or_malformed(tmp_path: Path) -> None:
    for source in TEMPLATE_DIR.glob("*.j2"):
        shutil.copy(source, tmp_path / source.name)
    assert load(tmp_path) == TEMPLATES

    (tmp_path / "paid.sms.zh-CN.j2").unlink()
    with pytest.raises(TemplateSetError, match=r"missing templates .*: paid\.sms\.zh-CN\.j2$"):
        load(tmp_path)

    (tmp_path / "paid.sms.zh-CN.j2").write_text(
        "{# version: 1 #}{% block subject %}x{% endblock %}"
    )
    with pytest.raises(TemplateSetError, match=r"paid\.sms\.zh-CN\.j2: has blocks \['subject'\]"):
        load(tmp_path)

    (tmp_path / "paid.sms.zh-CN.j2").write_text("{% block text %}x{% endblock %}")
    with pytest.raises(TemplateSetError, match="with a version"):
        load(tmp_path)

    shutil.copy(TEMPLATE_DIR / "paid.sms.zh-CN.j2", tmp_path / "paid.sms.zh-CN.j2")
    shutil.copy(TEMPLATE_DIR / "paid.sms.en.j2", tmp_path / "paid.fax.en.j2")
    with pytest.raises(TemplateSetError, match=r"paid\.fax\.en\.j2: unknown step"):
        load(tmp_path)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", STEPS)
def test_every_email_renders_in_every_locale(step: str, locale: str) -> None:
    rendering = render(step, locale, SAMPLE_FACTS[step], reference=SAMPLE_REFERENCE)

    assert rendering.locale == locale
    assert rendering.subject and "\n" not in rendering.subject
    assert "{" not in rendering.subject + rendering.body
    assert SAMPLE_REFERENCE in rendering.body and rendering.body.endswith("\n")
    assert rendering.html is not None
    assert rendering.html.startswith("<!DOCTYPE html>") and f'lang="{locale}"' in rendering.html
    assert SAMPLE_REFERENCE in rendering.html and "{{" not in rendering.html


def test_html_escapes_what_a_customer_or_reviewer_wrote_and_text_keeps_it() -> None:
    en = render("rejected", "en", REJECTION, reference=SAMPLE_REFERENCE)
    zh = render("rejected", "zh-CN", {**REJECTION, "order_id": "<i>O-1</i>"}, reference="r")

    assert en.html is not None and zh.html is not None
    assert "<script>" not in en.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in en.html
    assert "<script>alert('x')</script> & more" in en.body  # plain text is not HTML
    assert "<i>" not in zh.html and "&lt;i&gt;O-1&lt;/i&gt;" in zh.html
    assert zh.subject == "您订单 <i>O-1</i> 的退款申请未通过审核"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", STEPS)
def test_every_sms_renders_in_every_locale_as_one_branded_line(step: str, locale: str) -> None:
    rendering = render(step, locale, SAMPLE_FACTS[step], reference=SAMPLE_REFERENCE, channel="sms")

    assert rendering.locale == locale and rendering.subject == "" and rendering.html is None
    assert rendering.body.startswith(BRAND[locale])
    assert "\n" not in rendering.body and rendering.body == rendering.body.strip()
    assert "{" not in rendering.body and "—" not in rendering.body


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", STEPS)
def test_every_in_app_item_renders_in_every_locale(step: str, locale: str) -> None:
    rendering = render(
        step, locale, SAMPLE_FACTS[step], reference=SAMPLE_REFERENCE, channel="in_app"
    )

    assert rendering.locale == locale and rendering.html is None
    assert rendering.subject and "\n" not in rendering.subject
    assert rendering.body and rendering.body == rendering.body.strip()
    assert "{" not in rendering.subject + rendering.body and "—" not in rendering.body


# What the SMS of the sample facts come to: one segment unless the text must carry more
# than fits (the evidence list and the sample's English reason in a Chinese text, and a
# rejection's reason, rule and way to appeal).
SMS_SEGMENTS = {
    "zh-CN": {"evidence_requested": 2, "rejected": 2},
    "en": {"rejected": 2},
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", STEPS)
def test_sms_stay_within_their_segments(step: str, locale: str) -> None:
    body = render(step, locale, SAMPLE_FACTS[step], reference=SAMPLE_REFERENCE, channel="sms").body
    length = measure(body)

    assert length.encoding == ("UCS-2" if locale == "zh-CN" else "GSM-7")
    assert length.segments == SMS_SEGMENTS[locale].get(step, 1)
    if length.segments == 1:
        assert len(body) <= (70 if locale == "zh-CN" else 160)


@pytest.mark.parametrize("locale", LOCALES)
def test_a_rejection_sms_says_why_by_which_rule_and_how_to_appeal(locale: str) -> None:
    body = render("rejected", locale, REJECTION, reference="r", channel="sms").body

    assert REJECTION["explanation"][locale] in body and "R-RETURN-WINDOW-30D" in body
    assert (
        ("“申诉”" in body and "申诉期内" in body)
        if locale == "zh-CN"
        else ("choose Appeal within the appeal window" in body)
    )
    assert ("App或网站" if locale == "zh-CN" else "where you asked for it") in body


@pytest.mark.parametrize("channel", ["sms", "in_app"])
def test_paid_and_evidence_messages_carry_what_the_customer_needs(channel: str) -> None:
    zh = render("paid", "zh-CN", SAMPLE_FACTS["paid"], reference="r", channel=channel)
    en = render("paid", "en", SAMPLE_FACTS["paid"], reference="r", channel=channel)
    assert all(part in zh.body for part in ("¥129.00", "微信支付", "2026年11月5日"))
    assert all(part in en.body for part in ("CNY 129.00", "WeChat Pay account", "5 November 2026"))

    facts = {"order_id": "O-7", "missing": ["收据", "照片"], "message": "m"}
    zh = render("evidence_requested", "zh-CN", facts, reference="r", channel=channel)
    en = render("evidence_requested", "en", {**facts, "missing": ["a receipt", "a photo"]},
                reference="r", channel=channel)  # fmt: skip
    assert "收据、照片" in zh.body and "补充凭证" in zh.body
    assert "a receipt, a photo" in en.body and "Add evidence" in en.body


@pytest.mark.parametrize("channel", CHANNELS)
def test_amounts_are_formatted_for_the_locale_on_every_channel(channel: str) -> None:
    for step in ("received", "approved", "paid", "payout_failed"):
        zh = render(step, "zh-CN", SAMPLE_FACTS[step], reference="r", channel=channel)
        en = render(step, "en", SAMPLE_FACTS[step], reference="r", channel=channel)
        assert "¥129.00" in zh.body and "CNY" not in zh.body
        assert "CNY 129.00" in en.body and "¥" not in en.body
    coupon = render("compensation_offered", "zh-CN", SAMPLE_FACTS["compensation_offered"],
                    reference="r", channel=channel)  # fmt: skip
    assert "¥20.00" in coupon.body


@pytest.mark.parametrize("channel", CHANNELS)
def test_in_review_promises_a_decision_date_only_when_there_is_one(channel: str) -> None:
    dated = {"order_id": "O-9", "deadline": "2026-11-07T01:00:00+08:00"}
    for undated in ({"order_id": "O-9", "deadline": None}, {"order_id": "O-9"}):
        zh = render("in_review", "zh-CN", undated, reference="r", channel=channel)
        en = render("in_review", "en", undated, reference="r", channel=channel)
        assert "O-9" in zh.body and "预计" not in zh.body and "年" not in zh.body
        assert "O-9" in en.body and "decide by" not in en.body and "2026" not in en.body

    zh = render("in_review", "zh-CN", dated, reference="r", channel=channel)
    en = render("in_review", "en", dated, reference="r", channel=channel)
    # The date in the offset the deadline was given in: the 7th there, still the 6th in UTC.
    assert "2026年11月7日" in zh.body and "预计" in zh.body
    assert "decide by 7 November 2026." in en.body
    if channel == "email":
        assert en.html is not None and "decide by 7 November 2026." in en.html


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("step", STEPS)
def test_the_template_version_is_recorded_with_the_rendering(step: str, channel: str) -> None:
    for locale in LOCALES:
        template = TEMPLATES[step, channel, locale]
        rendering = render(step, locale, SAMPLE_FACTS[step], reference="r", channel=channel)
        assert template.version >= 1
        assert rendering.template == f"{step}.{channel}.{locale}@{template.version}"


@pytest.mark.parametrize(
    ("tag", "written_in"),
    [
        ("zh-CN", "zh-CN"),
        ("zh-cn", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-Hans-CN", "zh-CN"),
        ("zh-TW", "zh-CN"),  # Chinese in the script we write, before English
        ("en", "en"),
        ("en-US", "en"),
        ("EN-gb", "en"),
        ("fr-FR", "en"),
        ("ja", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_a_customers_language_tag_is_written_in_the_nearest_locale(
    tag: str | None, written_in: str
) -> None:
    assert resolve_locale(tag) == written_in
    rendered = render("approved", tag, SAMPLE_FACTS["approved"], reference="r")
    assert rendered.locale == written_in
    assert ("¥129.00" if written_in == "zh-CN" else "CNY 129.00") in rendered.subject


def test_an_unknown_locale_falls_back_to_english_and_a_missing_fact_is_a_key_error() -> None:
    assert render("paid", "de-DE", SAMPLE_FACTS["paid"], reference="r").locale == "en"
    assert render("paid", None, SAMPLE_FACTS["paid"], reference="r").locale == "en"
    with pytest.raises(KeyError):
        render("paid", "en", {"amount": {"amount": 1, "currency": "CNY"}}, reference="r")
    with pytest.raises(KeyError):
        render("nope", "en", {}, reference="r")
    with pytest.raises(KeyError):
        render("paid", "en", SAMPLE_FACTS["paid"], reference="r", channel="fax")
    with pytest.raises(KeyError, match=r"paid\.sms\.en\.j2"):
        render("paid", "en", {"amount": {"amount": 1, "currency": "CNY"}}, reference="r",
               channel="sms")  # fmt: skip
    assert render("paid", "fr", SAMPLE_FACTS["paid"], reference="r", channel="sms").locale == "en"


def test_the_email_is_multipart_alternative_with_text_and_html() -> None:
    # The sender's composition, on the same rendering: plain text first, HTML second.
    rendering = render("approved", "zh-CN", SAMPLE_FACTS["approved"], reference="r")
    assert rendering.html is not None
    message = EmailMessage()
    message.set_content(rendering.body, charset="utf-8")
    message.add_alternative(rendering.html, subtype="html", charset="utf-8")

    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == rendering.body
    assert "¥129.00" in html.get_content()


def test_cli_renders_subject_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "render", "approved", "--locale", "zh-CN"]) == 0
    out = capsys.readouterr().out

    assert out.startswith(
        "Template: approved.email.zh-CN@1\nSubject: 您的退款 ¥129.00 已审核通过\n\n"
    )
    assert "支付宝" in out and "<p>" not in out


def test_cli_renders_an_sms_with_its_length(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "render", "paid", "--locale", "zh-CN", "--channel", "sms"]) == 0
    out = capsys.readouterr().out
    text = render("paid", "zh-CN", SAMPLE_FACTS["paid"], reference=SAMPLE_REFERENCE, channel="sms")

    assert out == (
        "Template: paid.sms.zh-CN@1\n"
        f"Length: {len(text.body)} characters, UCS-2, 1 segment\n\n{text.body}\n"
    )
    assert main(["notify", "render", "paid", "--locale", "en", "--channel", "sms", "--html"]) == 2
    assert "no HTML body" in capsys.readouterr().err


def test_cli_renders_an_in_app_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "render", "in_review", "--locale", "en", "--channel", "in_app"]) == 0
    out = capsys.readouterr().out

    assert out.startswith("Template: in_review.in_app.en@2\nSubject: Your refund request is")
    assert "decide by 6 November 2026." in out


def test_cli_renders_the_escaped_html(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "render", "rejected", "--locale", "en", "--html"]) == 0
    out = capsys.readouterr().out

    assert "Subject: Your refund request for order ORD-1001 was not approved" in out
    assert "<p>Hello,</p>" in out and "&lt;b&gt;(sample)&lt;/b&gt;" in out


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (
            ["nope", "--locale", "en"],
            "received, in_review, evidence_requested, approved, rejected,"
            " compensation_offered, withdrawn, paid, payout_failed, return_requested,"
            " return_ship_by_approaching, return_delivered, return_received,"
            " return_deadline_missed, exchange_ready",
        ),
        (["paid", "--locale", "fr"], "zh-CN, en"),
        (["paid", "--locale", "en", "--channel", "pigeon"], "email, sms, in_app"),
    ],
)
def test_cli_unknown_step_locale_or_channel_exits_2_with_the_known_ones(
    capsys: pytest.CaptureFixture[str], args: list[str], listed: str
) -> None:
    assert main(["notify", "render", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"known: {listed}" in captured.err


def test_review_and_withdrawal_steps_are_announced_to_the_customer() -> None:
    from datetime import UTC, datetime

    from services.notify.messages.application import step_for
    from shared.contracts import (
        MoneyModel,
        RefundWithdrawnV1,
        ReviewCompensationOfferedV1,
        ReviewEvidenceRequestedV1,
    )

    now = datetime(2026, 11, 20, tzinfo=UTC)
    route = {"refund_id": "rf_1", "tenant": "acme", "order_id": "ORD-1"}
    asked = step_for(
        ReviewEvidenceRequestedV1(
            **route,
            missing=["photo"],
            message="Send a photo.",
            requested_by="ann",
            requested_at=now,
        )
    )
    assert asked == (
        "evidence_requested",
        {"order_id": "ORD-1", "missing": ["photo"], "message": "Send a photo."},
    )
    coupon = step_for(
        ReviewCompensationOfferedV1(
            **route,
            coupon=MoneyModel(amount=2000, currency="CNY"),
            note="",
            offered_by="wang",
            offered_at=now,
        )
    )
    assert coupon is not None and coupon[0] == "compensation_offered"
    withdrawn = step_for(
        RefundWithdrawnV1(**route, reason="", actor="tenant:acme", withdrawn_at=now)
    )
    assert withdrawn == ("withdrawn", {"order_id": "ORD-1"})
    for step, facts in (asked, coupon, withdrawn):  # type: ignore[misc]
        for locale in ("zh-CN", "en"):
            rendered = render(step, locale, facts, reference="rf_1")
            assert "ORD-1" in rendered.subject + rendered.body
    text = render("evidence_requested", "en", asked[1], reference="rf_1").body  # type: ignore[index]
    assert "photo" in text and "Add evidence" in text
    assert "¥20.00" in render("compensation_offered", "zh-CN", coupon[1], reference="rf_1").subject


# What the customer reads when the refund goes round again, per channel and locale:
# (step key, facts) → words each rendering must hold, and words the first time's must not.
AGAIN = {
    ("in_review", "appeal"): {"en": "appeal", "zh-CN": "申诉"},
    ("in_review", "evidence"): {"en": "evidence", "zh-CN": "收到"},
    ("rejected#2", None): {"en": "still not approved", "zh-CN": "仍"},
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(("key", "why"), list(AGAIN))
def test_in_review_again_and_a_rejection_upheld_say_so_on_every_channel(
    key: str, why: str | None, channel: str, locale: str
) -> None:
    step = key.partition("#")[0]
    facts = {**SAMPLE_FACTS[step], **({"why": why, "deadline": None} if why else {})}
    again = render(key, locale, facts, reference="r", channel=channel)
    first = render(step, locale, SAMPLE_FACTS[step], reference="r", channel=channel)
    words = AGAIN[key, why][locale]

    assert words in again.subject + again.body and words not in first.subject + first.body
    assert "ORD-1001" in again.subject + again.body
    assert again.template == first.template == f"{step}.{channel}.{locale}@2"
    if channel == "email":
        assert again.html is not None and words in again.html
        assert again.subject != first.subject
    if channel == "sms":
        assert again.body.startswith(BRAND[locale])
        assert measure(again.body).segments <= measure(first.body).segments + 1
    if step == "rejected":  # an appeal can be appealed again: still says how
        assert ("appeal" if locale == "en" else "申诉") in again.body.lower()


def test_the_cli_shows_the_wording_of_a_later_occurrence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["notify", "render", "rejected", "--locale", "en", "--again"]) == 0
    assert "Subject: Your appeal for order ORD-1001 was not upheld" in capsys.readouterr().out
    argv = ["notify", "render", "in_review", "--locale", "zh-CN", "--why", "evidence"]
    assert main(argv) == 0
    assert "Subject: 我们已收到您为订单 ORD-1001 补充的材料" in capsys.readouterr().out
    assert main(["notify", "render", "paid", "--locale", "en", "--why", "appeal"]) == 2
    assert "--why is for in_review only" in capsys.readouterr().err
