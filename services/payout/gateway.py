"""Client of the payment gateway's refund API (the sandbox here; real adapters later)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx


class TransientGatewayError(Exception):
    """Worth retrying with the same merchant refund number: timeouts, 5xx, 429."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.retry_after = retry_after


class PermanentGatewayError(Exception):
    """Retrying cannot help: the provider refused the refund itself."""


@dataclass(frozen=True)
class GatewayReceipt:
    provider_reference: str
    executed_at: datetime


class SandboxGateway:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def refund(
        self, *, merchant_refund_no: str, amount: int, currency: str, method: str, reference: str
    ) -> GatewayReceipt:
        body = {
            "merchant_refund_no": merchant_refund_no,
            "amount": amount,
            "currency": currency,
            "method": method,
            "payment_reference": reference,
        }
        try:
            response = await self._client.post("/v1/refunds", json=body)
        except httpx.TransportError as error:  # includes timeouts: money may have moved
            raise TransientGatewayError(f"gateway unreachable: {type(error).__name__}") from error
        if response.status_code == 200:
            data = response.json()
            return GatewayReceipt(
                data["provider_reference"], datetime.fromisoformat(data["executed_at"])
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientGatewayError(
                f"gateway answered {response.status_code}", _retry_after(response)
            )
        raise PermanentGatewayError(
            f"gateway refused: {response.status_code} {response.text[:200]}"
        )

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None
