"""Building blocks every service's API shares: strict bodies, money, examples and list pages."""

# No `from __future__ import annotations`: pydantic reads these annotations at runtime.

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from pydantic_core import PydanticCustomError

from shared.money import CURRENCY_EXPONENTS, Money

MAX_MINOR_UNITS = 10**15
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


def example(*samples: dict[str, Any]) -> ConfigDict:
    """A model's `model_config` giving OpenAPI its examples (merged with its base's config)."""
    return ConfigDict(json_schema_extra={"examples": list(samples)})


class Strict(BaseModel):
    """Unknown fields are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Listed(BaseModel):
    """A page of a list, Stripe's way: a subclass names its items with `data: list[...]`."""

    object: Literal["list"] = "list"
    url: str
    has_more: bool

    @classmethod
    def of(cls, request: Request, data: Sequence[Any], has_more: bool = False, **more: Any) -> Self:
        """The items `data`, in order, of the list at the request's path (and any fields
        `more` a subclass adds)."""
        page = {"url": request.url.path, "has_more": has_more, "data": data}
        return cls.model_validate(page | more)


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

    model_config = example({"amount": 11900, "currency": "CNY"})

    amount: StrictInt = Field(gt=0, le=MAX_MINOR_UNITS, description="minor units, > 0")
    currency: Currency

    def money(self) -> Money:
        return Money(self.amount, self.currency)


class AmountOrNothing(Amount):
    """An amount that may be zero, where the domain decides when nothing is allowed."""

    amount: StrictInt = Field(ge=0, le=MAX_MINOR_UNITS, description="minor units, >= 0")
