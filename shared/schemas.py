"""Request-body building blocks every service's API shares: strict models and money."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from pydantic_core import PydanticCustomError

from shared.money import CURRENCY_EXPONENTS, Money

MAX_MINOR_UNITS = 10**15
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class Strict(BaseModel):
    """Unknown fields are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


def _known_currency(code: str) -> str:
    if code not in CURRENCY_EXPONENTS:
        raise PydanticCustomError(
            "unknown_currency", "{code} is not a supported ISO 4217 currency", {"code": code}
        )
    return code


Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"]), AfterValidator(_known_currency)
]


class Amount(Strict):
    """Money: integer minor units (12900 CNY = ¥129.00) and an ISO 4217 currency."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"amount": 11900, "currency": "CNY"}]}
    )

    amount: StrictInt = Field(gt=0, le=MAX_MINOR_UNITS, description="minor units, > 0")
    currency: Currency

    def money(self) -> Money:
        return Money(self.amount, self.currency)
