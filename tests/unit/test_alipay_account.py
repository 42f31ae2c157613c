"""Alipay account validation, RSA2 signing rules (with Alipay's documented example), and
the yuan/fen conversions: every key parsed, pairs checked, the field named when not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as ser
from pydantic import ValidationError

from sandbox.alipay import dev_keys
from services.payout.providers.alipay import PROVIDER, AlipayAccount
from services.payout.providers.alipay.amounts import fen, yuan
from services.payout.providers.alipay.signing import content_to_sign, load_private_key

GARBAGE_DER = base64.b64encode(b"garbage").decode()
SHORT_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
APP_KEY = dev_keys.APP_PUBLIC_KEY
ALIPAY_KEY = dev_keys.ALIPAY_PUBLIC_KEY
MENU = '{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out","name":"话费充值"}]}'


def settings(**overrides: Any) -> dict[str, Any]:
    return {**dev_keys.dev_account("http://127.0.0.1:9"), **overrides}


def bare(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def pkcs1_private_pem() -> str:
    key = load_private_key(dev_keys.APP_PRIVATE_KEY)
    raw = key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
    )
    return raw.decode()


def field_of(error: ValidationError) -> set[str]:
    return {str(item["loc"][0]) for item in error.errors()}


def test_dev_account_validates_and_defaults_to_alipays_host() -> None:
    account = AlipayAccount(**settings())
    assert account.api_base == "http://127.0.0.1:9"
    real = AlipayAccount(**{k: v for k, v in settings().items() if k != "api_base"})
    assert real.api_base == "https://openapi.alipay.com"
    assert PROVIDER.account is AlipayAccount and PROVIDER.methods == frozenset({"alipay"})
    assert PROVIDER.answer.body == b"success" and PROVIDER.answer.media_type == "text/plain"


@pytest.mark.parametrize(
    "private_key",
    [
        pytest.param(dev_keys.APP_PRIVATE_KEY, id="pkcs8-pem"),
        pytest.param(bare(dev_keys.APP_PRIVATE_KEY), id="pkcs8-bare-base64"),
        pytest.param(pkcs1_private_pem(), id="pkcs1-pem"),
        pytest.param(bare(pkcs1_private_pem()), id="pkcs1-bare-base64"),
    ],
)
def test_every_private_key_encoding_alipays_tool_writes_is_read(private_key: str) -> None:
    account = AlipayAccount(**settings(app_private_key=private_key))
    assert (
        account.summary()["app_key_sha256"]
        == AlipayAccount(**settings()).summary()["app_key_sha256"]
    )


def test_alipay_public_key_as_bare_base64_is_read() -> None:
    account = AlipayAccount(**settings(alipay_public_key=bare(dev_keys.ALIPAY_PUBLIC_KEY)))
    assert account.alipay_key().key_size == 2048


def test_summary_names_keys_by_fingerprint_and_holds_no_secret() -> None:
    summary = AlipayAccount(**settings()).summary()
    public = ser.load_pem_public_key(dev_keys.ALIPAY_PUBLIC_KEY.encode())
    import hashlib

    der = public.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    assert summary["alipay_key_sha256"] == hashlib.sha256(der).hexdigest()
    assert summary["app_id"] == dev_keys.DEV_APP_ID
    text = repr(summary) + repr(AlipayAccount(**settings()))
    assert bare(dev_keys.APP_PRIVATE_KEY)[:40] not in text


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"app_private_key": "not a key"}, "app_private_key", "neither PEM nor base64"),
        ({"app_private_key": GARBAGE_DER}, "app_private_key", "cannot be read"),
        ({"app_private_key": ""}, "app_private_key", "empty"),
        ({"alipay_public_key": SHORT_PEM}, "alipay_public_key", "cannot be read"),
        ({"alipay_public_key": APP_KEY}, "alipay_public_key", "app's own public key"),
        ({"app_public_key": ALIPAY_KEY}, "app_public_key", "does not match app_private_key"),
        ({"app_id": "20210000000000x1"}, "app_id", "pattern"),
        ({"api_base": "ftp://example.com"}, "api_base", "pattern"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AlipayAccount(**settings(**overrides))
    assert field_of(caught.value) == {field}
    assert words in str(caught.value)


@pytest.mark.parametrize("missing", ["app_id", "app_private_key", "alipay_public_key"])
def test_missing_credential_is_refused_naming_it(missing: str) -> None:
    given = {k: v for k, v in settings().items() if k != missing}
    with pytest.raises(ValidationError) as caught:
        AlipayAccount(**given)
    assert field_of(caught.value) == {missing}


def test_sorted_parameter_string_follows_alipays_documented_example() -> None:
    # Alipay's "自行实现签名" example: sorted by name, sign excluded, raw values, & joined.
    params = {
        "app_id": "2014072300007148",
        "method": "alipay.mobile.public.menu.add",
        "charset": "GBK",
        "sign_type": "RSA2",
        "timestamp": "2014-07-24 03:07:50",
        "biz_content": MENU,
        "sign": "ignored",
        "version": "1.0",
        "notify_url": "",
    }
    assert content_to_sign(params) == (
        'app_id=2014072300007148&biz_content={"button":[{"actionParam":"ZFB_HFCZ",'
        '"actionType":"out","name":"话费充值"}]}&charset=GBK&method=alipay.mobile.public.menu.add'
        "&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
    )
    assert "sign_type" not in content_to_sign(params, exclude=("sign", "sign_type"))


@pytest.mark.parametrize(
    ("minor", "text"), [(1, "0.01"), (10, "0.10"), (12345, "123.45"), (100000000, "1000000.00")]
)
def test_yuan_strings_convert_exactly_both_ways(minor: int, text: str) -> None:
    assert yuan(minor) == text
    assert fen(text) == minor


@pytest.mark.parametrize("text", ["1.001", "abc", "NaN", "Infinity", ""])
def test_yuan_with_sub_fen_digits_or_no_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        fen(text)
