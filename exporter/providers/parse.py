"""Parsing helpers every provider uses: exact money, counts and typed JSON fields; a
malformed value raises :class:`~exporter.providers.errors.ParseError` naming where it is."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exporter.providers.errors import ParseError


def as_decimal(value: Any, what: str) -> Decimal:
    """A money or count field that may be a JSON number or a numeric string."""
    if isinstance(value, bool) or value is None:
        raise ParseError(f"{what}: expected a number, got {type(value).__name__}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError:
            raise ParseError(f"{what}: {value[:40]!r} is not a number") from None
    else:
        raise ParseError(f"{what}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ParseError(f"{what}: not a finite number")
    return result


def as_count(value: Any, what: str, *, default: int | None = None) -> int:
    """A token or request count: an integer (or integral number/string); ``None`` -> default."""
    if value is None:
        if default is None:
            raise ParseError(f"{what}: missing")
        return default
    number = as_decimal(value, what)
    if number != number.to_integral_value() or number < 0:
        raise ParseError(f"{what}: expected a non-negative integer, got {number}")
    return int(number)


def cents(value: Any, what: str) -> Decimal:
    """An amount in cents (a decimal string such as ``"123.78912"``, or a number) as exact
    major units: the decimal point moves two places, no rounding ever happens."""
    amount = as_decimal(value, what)
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # as_decimal guarantees a finite number
    return Decimal((sign, digits, exponent - 2))


def json_field(obj: Any, name: str, kind: type, where: str) -> Any:
    """``obj[name]``, which must be a ``kind``; a :class:`ParseError` naming ``where`` if not."""
    if not isinstance(obj, dict):
        raise ParseError(f"{where}: expected a JSON object")
    value = obj.get(name)
    if kind is int and isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParseError(f"{where}.{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def optional_str(obj: dict[str, Any], name: str, where: str) -> str:
    """A string-or-null field (a grouping dimension); ``null`` and absent give ``""``."""
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"{where}.{name}: expected a string or null")
    return value
