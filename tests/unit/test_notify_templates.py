"""Notify's Jinja2 templates: every step in every locale, HTML escaping, versions, the CLI."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from refunds.cli import main
from services.notify.templates import (
    LOCALES,
    SAMPLE_FACTS,
    SAMPLE_REFERENCE,
    STEPS,
    TEMPLATES,
    render,
)

REJECTION = {
    "order_id": "ORD-1001",
    "rule": "R-RETURN-WINDOW-30D",
    "explanation": {"en": "<script>alert('x')</script> & more", "zh-CN": "<script>坏</script>"},
}


def test_the_steps_notify_schedules_all_have_templates() -> None:
    assert set(STEPS) == {
        "received",
        "evidence_requested",
        "approved",
        "rejected",
        "compensation_offered",
        "withdrawn",
        "paid",
        "payout_failed",
    }
    assert set(SAMPLE_FACTS) == set(STEPS)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", STEPS)
def test_every_step_renders_in_every_locale(step: str, locale: str) -> None:
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


@pytest.mark.parametrize("step", STEPS)
def test_the_template_version_is_recorded_with_the_rendering(step: str) -> None:
    for locale in LOCALES:
        template = TEMPLATES[step, "email", locale]
        rendering = render(step, locale, SAMPLE_FACTS[step], reference="r")
        assert template.version >= 1
        assert rendering.template == f"{step}.email.{locale}@{template.version}"


def test_an_unknown_locale_falls_back_to_english_and_a_missing_fact_is_a_key_error() -> None:
    assert render("paid", "de-DE", SAMPLE_FACTS["paid"], reference="r").locale == "en"
    assert render("paid", None, SAMPLE_FACTS["paid"], reference="r").locale == "en"
    with pytest.raises(KeyError):
        render("paid", "en", {"amount": {"amount": 1, "currency": "CNY"}}, reference="r")
    with pytest.raises(KeyError):
        render("nope", "en", {}, reference="r")
    with pytest.raises(KeyError):
        render("paid", "en", SAMPLE_FACTS["paid"], reference="r", channel="sms")


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
            "approved, compensation_offered, evidence_requested, paid, payout_failed,"
            " received, rejected, withdrawn",
        ),
        (["paid", "--locale", "fr"], "zh-CN, en"),
        (["paid", "--locale", "en", "--channel", "pigeon"], "email"),
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

    from services.notify.application import step_for
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
