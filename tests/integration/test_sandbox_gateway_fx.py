"""Integration tests of the sandbox gateway's FX rates: the fixed table with its inverses,
unknown pairs refused, and the payout client reading a rate."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from services.payout.providers.gateway import PermanentProviderError, SandboxGateway
from tests.support.sandbox_gateway import (
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
)


@pytest.mark.parametrize(
    ("base", "quote", "rate"),
    [("CNY", "USD", "0.1375"), ("USD", "CNY", "7.272727273"), ("CNY", "EUR", "0.128")],
)
def test_fx_rates_come_from_the_fixed_table_with_their_inverses(
    gateway: httpx.Client, base: str, quote: str, rate: str
) -> None:
    answer = gateway.get("/v1/fx/rates", params={"base": base, "quote": quote})
    assert answer.status_code == 200
    assert answer.json() == {
        "base": base,
        "quote": quote,
        "rate": rate,
        "source": "sandbox-fx",
        "as_of": "2026-01-02T00:00:00Z",
    }
    assert datetime.fromisoformat(answer.json()["as_of"]).utcoffset() is not None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"base": "CNY", "quote": "GBP"}, 404),
        ({"base": "CNY", "quote": "CNY"}, 404),
        ({"base": "cny", "quote": "USD"}, 400),
        ({"base": "CNY"}, 422),
    ],
)
def test_fx_rates_refuse_unknown_pairs(
    gateway: httpx.Client, params: dict[str, str], status: int
) -> None:
    answer = gateway.get("/v1/fx/rates", params=params)
    assert answer.status_code == status
    if status == 404:
        assert answer.json() == {"error": f"no rate for {params['base']}/{params['quote']}"}


async def test_the_payout_client_reads_a_rate(gateway: httpx.Client) -> None:
    client = SandboxGateway(str(gateway.base_url))
    try:
        rate = await client.rate("CNY", "USD")
        with pytest.raises(PermanentProviderError, match="CNY->GBP"):
            await client.rate("CNY", "GBP")
    finally:
        await client.close()
    assert (rate.base, rate.quote, rate.rate, rate.source) == (
        "CNY",
        "USD",
        Decimal("0.1375"),
        "sandbox-fx",
    )
    assert rate.at == datetime(2026, 1, 2, tzinfo=UTC)
