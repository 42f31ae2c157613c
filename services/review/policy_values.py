"""What every section of the refund policy is built from: strict models, amounts per
currency, reason codes and the `*` that matches anything."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from services.review.vocabulary import ANY
from shared.contracts import Reason
from shared.money import CURRENCY_EXPONENTS

# The reason codes intake accepts; a policy naming any other reason would never match.
REASONS: tuple[str, ...] = get_args(Reason)


def _reason_or_any(value: str) -> str:
    if value != ANY and value not in REASONS:
        raise PydanticCustomError(
            "unknown_reason",
            "unknown reason '{value}'; use '*' or one of {known}",
            {"value": value, "known": ", ".join(REASONS)},
        )
    return value


ReasonOrAny = Annotated[str, AfterValidator(_reason_or_any)]


def non_empty(values: tuple[str, ...]) -> tuple[str, ...]:
    """Instead of min_length, which would also complain when every item was merely misspelt."""
    if not values:
        raise ValueError("must list at least one")
    return values


class Strict(BaseModel):
    """Every policy section: unknown keys are typos, and a loaded policy never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_float(value: Any) -> Any:
    """Amounts are decimal strings; a YAML float (500.10) would already be binary-rounded."""
    if isinstance(value, float):
        raise ValueError(f"write amounts as quoted decimal strings (e.g. '{value}'), not numbers")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


MajorAmount = Annotated[
    str,
    BeforeValidator(_no_float),
    Field(pattern=r"^\d{1,15}(\.\d{1,3})?$", description="a non-negative decimal in major units"),
]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=60)]


class AmountByCurrency(Strict):
    """An amount in major units per currency; `default` applies to any other currency.

    Written `{default: "500.00", JPY: "50000"}`: 500 yuan, 500 dollars … but 50 000
    yen, since one amount in major units means very different money per currency.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    default: MajorAmount = Field(
        description="major units for any currency without its own entry; whole units, so it "
        "applies to zero-decimal currencies (JPY) too"
    )

    @model_validator(mode="before")
    @classmethod
    def _amounts_are_strings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: _no_float(value) for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _currencies_known_and_exact(self) -> AmountByCurrency:
        if Decimal(self.default) != Decimal(self.default).to_integral_value():
            raise ValueError(
                f"default {self.default} must be whole major units, or it cannot apply to "
                "currencies without minor units (JPY); give such currencies their own entry"
            )
        for currency, value in (self.model_extra or {}).items():
            if currency not in CURRENCY_EXPONENTS:
                raise ValueError(f"{currency!r} is not a supported ISO 4217 currency")
            if not isinstance(value, str):
                raise ValueError(f"{currency}: write the amount as a quoted decimal string")
            try:
                amount = Decimal(value)
            except InvalidOperation:
                raise ValueError(f"{currency}: {value!r} is not a decimal amount") from None
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"{currency}: {value!r} must be a non-negative decimal")
            scaled = amount.scaleb(CURRENCY_EXPONENTS[currency])
            if scaled != scaled.to_integral_value():
                raise ValueError(f"{currency}: {value} has more decimals than {currency} allows")
        return self

    def for_currency(self, currency: str) -> str:
        """The major-unit amount that applies to `currency` (its own entry, else default)."""
        value = (self.model_extra or {}).get(currency, self.default)
        return str(value)

    def decimals(self) -> dict[str, Decimal]:
        """Every entry as a Decimal, `default` included (to compare thresholds)."""
        found = {"default": Decimal(self.default)}
        found |= {key: Decimal(str(value)) for key, value in (self.model_extra or {}).items()}
        return found
