"""Amounts of the operator's currency: exact decimals on the outside (config, API, CLI), integer
nano-units inside (the database), so that sums of many small charges are exact."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

__all__ = ["NANOS", "Money", "from_nanos", "to_nanos"]

NANOS = 1_000_000_000

# An amount as answers carry it: JSON gets exact decimal text, never a float nor ``1E-8``.
Money = Annotated[
    Decimal,
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
    Field(description="An amount of the operator's currency, exact, as decimal text (never 1E-8)."),
]


def to_nanos(amount: Decimal | float | int | str) -> int:
    """An amount in nano-units, rounded half up (``0.0000000015`` -> 2)."""
    return int((Decimal(str(amount)) * NANOS).to_integral_value(rounding=ROUND_HALF_UP))


def from_nanos(nanos: int) -> Decimal:
    """Nano-units as an exact decimal amount, without trailing zeros (``1500000000`` -> ``1.5``)."""
    value = (Decimal(nanos) / NANOS).normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral() else value
