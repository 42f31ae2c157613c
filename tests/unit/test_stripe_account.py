"""A tenant's Stripe account: key kinds, signing secrets, and what a listing may show."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sandbox.stripe import DEV_SECRET_KEY, DEV_WEBHOOK_SECRET, dev_account
from services.payout.providers.stripe import StripeAccount
from services.payout.providers.stripe.units import UnmappableAmount, from_stripe, to_stripe
from shared.money import Money


def settings(**changes: Any) -> dict[str, Any]:
    return {**dev_account("http://127.0.0.1:12111/"), **changes}


def field_of(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.errors()[0]["loc"])


def test_the_dev_account_validates_and_lists_without_secrets() -> None:
    account = StripeAccount.model_validate(settings())
    assert account.api_base == "http://127.0.0.1:12111"
    summary = account.summary()
    assert summary["mode"] == "test" and summary["key_kind"] == "secret"
    assert summary["secret_key_last4"] == DEV_SECRET_KEY[-4:]
    assert summary["webhook_secret_fingerprints"][0].startswith("sha256:")
    assert DEV_SECRET_KEY not in repr(account) and DEV_WEBHOOK_SECRET not in str(summary)


def test_default_api_base_is_stripes() -> None:
    values = settings()
    del values["api_base"]
    assert StripeAccount.model_validate(values).api_base == "https://api.stripe.com"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"secret_key": "pk_test_" + "a" * 24}, "secret_key", "publishable"),
        ({"secret_key": "sk_prod_" + "a" * 24}, "secret_key", "sk_live_"),
        ({"secret_key": "whsec_" + "a" * 24}, "secret_key", "sk_live_"),
        ({"webhook_secrets": []}, "webhook_secrets", "at least 1"),
        ({"webhook_secrets": ["sk_test_" + "a" * 24]}, "webhook_secrets", "whsec_"),
        ({"webhook_secrets": [DEV_WEBHOOK_SECRET] * 2}, "webhook_secrets", "twice"),
        ({"api_base": "ftp://stripe"}, "api_base", "http"),
    ],
)
def test_bad_settings_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        StripeAccount.model_validate(settings(**changes))
    assert field_of(refused.value) == field
    assert words in str(refused.value)


@pytest.mark.parametrize("missing", ["secret_key", "webhook_secrets"])
def test_a_missing_secret_is_refused(missing: str) -> None:
    values = settings()
    del values[missing]
    with pytest.raises(ValidationError) as refused:
        StripeAccount.model_validate(values)
    assert field_of(refused.value) == missing


def test_restricted_and_live_keys_are_accepted() -> None:
    account = StripeAccount.model_validate(settings(secret_key="rk_live_" + "Z9" * 12))
    assert account.summary()["key_kind"] == "restricted" and account.live


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (Money(1250, "USD"), (1250, "usd")),
        (Money(1250, "JPY"), (1250, "jpy")),
        (Money(7, "ISK"), (700, "isk")),  # zero-decimal in ISO, two-decimal at Stripe
        (Money(1230, "KWD"), (1230, "kwd")),
    ],
)
def test_amounts_map_exactly_both_ways(ours: Money, theirs: tuple[int, str]) -> None:
    assert to_stripe(ours) == theirs
    assert from_stripe(*theirs) == ours


def test_amounts_stripe_cannot_take_exactly_are_refused() -> None:
    with pytest.raises(UnmappableAmount):
        to_stripe(Money(1231, "KWD"))  # Stripe wants the last of three decimals to be 0
    with pytest.raises(UnmappableAmount):
        from_stripe(701, "isk")
    with pytest.raises(UnmappableAmount):
        from_stripe(100, "xyz")
