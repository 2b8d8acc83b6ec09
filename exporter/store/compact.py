"""The compact row format of the history (migration ``012_compact_rows``, issue 17).

Usage and cost rows are stored without repeated text:

* ``usage_rows`` / ``cost_rows`` hold integers only (besides the rare exact-text money
  fallback below): the day as days since 1970-01-01, the stream as its ``streams.id``, every
  other label (source, api key, batch, service tier, unit, line item, cost type, token
  type, attribution, currency) as an id of ``names``; their natural key is the primary
  key of a ``WITHOUT ROWID`` table (SQLite), so the key is stored once and no other index
  is needed (``(day, stream, ...)``: day ranges are range scans).
* Money is an exact integer of **pico-units** (10^-12 of the currency's major unit): every
  amount a provider reports (JSON numbers, decimal strings, cents with five decimals, the
  OpenAI split at 1e-12) round-trips exactly. The bound is |amount| <= 9,223,372.036854775807
  per row (a signed 64-bit integer, SQLite INTEGER and PostgreSQL BIGINT). An amount with
  more than 12 decimals or beyond the bound is kept as exact decimal text in ``*_exact``
  instead: never rounded, never a float (a converted amount is stored at 12 decimals:
  ``fx.rates.stored_amount``).
* The FX audit of a cost row is ``fx`` (an id of ``fx_applied``: accounting currency, rate,
  rate date, source, error; one row per distinct conversion, a few per day), ``fx_status``
  (0 final, 1 provisional, 2 error) and the converted amount.

The views ``usage`` and ``costs`` keep the old columns (text days, text money) for SQL
written against the old tables; the store's own readers decode the compact rows here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

SCALE = 12  # decimals kept by the integer money columns
UNITS = 10**SCALE  # integer units per major unit (pico-units)
MAX_UNITS = 2**63 - 1  # signed 64-bit: SQLite INTEGER, PostgreSQL BIGINT
MAX_AMOUNT = Decimal(MAX_UNITS).scaleb(-SCALE)
EPOCH = date(1970, 1, 1).toordinal()
FX_STATUSES = ("final", "provisional", "error")  # fx_status codes 0, 1, 2
FX_REF_COLUMNS = ("fx_currency", "fx_rate", "fx_rate_date", "fx_source", "fx_error")
# Cost rows whose conversion is not final (or not yet run): the partial index
# cost_rows_fx_pending; a query must spell the predicate exactly so to use it.
ROW_FX_PENDING = "(fx_status IS NULL OR fx_status <> 0 OR fx IS NULL)"

FxRef = tuple[str, str, str, str, str]  # FX_REF_COLUMNS, "" for none


def to_units(amount: Decimal) -> int | None:
    """``amount`` as exact integer pico-units, or None when it has more than :data:`SCALE`
    decimals or lies beyond the 64-bit bound (the caller stores exact text then)."""
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # NaN, infinity
        return None
    shift = exponent + SCALE
    if len(digits) + shift > 19:  # more than 19 digits: beyond the bound
        return None
    n = int("".join(map(str, digits)) or "0")
    if shift >= 0:
        units = n * int(10**shift)
    else:
        units, rest = divmod(n, int(10**-shift))
        if rest:
            return None
    if units > MAX_UNITS:
        return None
    return -units if sign else units


def text_units(text: str) -> int | None:
    """:func:`to_units` of decimal text (what the old money columns hold), without building
    a Decimal for the plain ``-123.456`` form."""
    body = text[1:] if text[:1] == "-" else text
    whole, _, frac = body.partition(".")
    if whole.isdigit() and len(frac) <= SCALE and (not frac or frac.isdigit()):
        units: int = int(whole) * UNITS + (int(frac.ljust(SCALE, "0")) if frac else 0)
        if units <= MAX_UNITS:
            return -units if body is not text else units
        return None
    return to_units(Decimal(text))


def from_units(units: int) -> Decimal:
    """Exact pico-units -> Decimal without trailing zeros (``1500000000000`` -> ``1.5``)."""
    if units < 0:
        digits = str(-units).rjust(SCALE + 1, "0")
        return Decimal(f"-{digits[:-SCALE]}.{digits[-SCALE:]}".rstrip("0"))
    digits = str(units).rjust(SCALE + 1, "0")
    return Decimal(f"{digits[:-SCALE]}.{digits[-SCALE:]}".rstrip("0"))


def encode_money(amount: Decimal) -> tuple[int | None, str | None]:
    """(units, exact text): one of the two is set."""
    units = to_units(amount)
    return (units, None) if units is not None else (None, format(amount, "f"))


def decode_money(units: int | None, exact: str | None) -> Decimal:
    """The amount of a (units, exact text) pair; a row without either is corrupt."""
    if units is not None:
        return from_units(units)
    if exact is None:
        raise ValueError("a stored amount has neither integer units nor exact text")
    return Decimal(exact)


def money_text(units: int | None, exact: str | None) -> str | None:
    """What the old text columns held: exact decimal text (trailing zeros dropped)."""
    if units is None and exact is None:
        return None
    return format(decode_money(units, exact), "f")


def day_number(day: date) -> int:
    return day.toordinal() - EPOCH


def day_of(number: int) -> date:
    return date.fromordinal(number + EPOCH)


def status_code(status: str | None) -> int | None:
    if status is None:
        return None
    try:
        return FX_STATUSES.index(status)
    except ValueError:
        raise ValueError(f"fx_status {status!r} is not one of {', '.join(FX_STATUSES)}") from None


def status_name(code: int | None) -> str | None:
    return None if code is None else FX_STATUSES[code]


def fx_ref(columns: Mapping[str, Any]) -> FxRef | None:
    """The ``fx_applied`` key of a row's FX columns (None: not converted at all)."""
    values = tuple(_text(columns.get(c)) for c in FX_REF_COLUMNS)
    if not any(values):
        return None
    currency, rate, rate_date, source, error = values
    return currency, rate, rate_date, source, error


def fx_columns(
    ref: FxRef | None, status: int | None, units: int | None, exact: str | None
) -> dict[str, Any]:
    """The old FX columns (``FX_COLUMNS``) of a compact cost row."""
    values = ref or ("", "", "", "", "")
    out: dict[str, Any] = {"fx_amount": money_text(units, exact)}
    for name, value in zip(FX_REF_COLUMNS, values, strict=True):
        out[name] = value or None
    out["fx_status"] = status_name(status)
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# -- DDL --------------------------------------------------------------------------------------

USAGE_LABELS = ("source", "api_key", "batch", "service_tier", "unit")
USAGE_VALUES = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "requests", "units",
)  # fmt: skip
COST_KEY_LABELS = ("line_item", "api_key", "service_tier")
COST_LABELS = ("cost_type", "token_type", "attribution", "currency")
USAGE_PK = ("day", "stream", *USAGE_LABELS)
COST_PK = ("day", "stream", *COST_KEY_LABELS)
COST_ROW_COLUMNS = (
    *COST_PK, *COST_LABELS, "amount", "amount_exact", "fx", "fx_status", "fx_amount",
    "fx_amount_exact",
)  # fmt: skip
USAGE_ROW_COLUMNS = (*USAGE_PK, *USAGE_VALUES)


def compact_ddl(bigint: str, id_key: str, without_rowid: str) -> list[str]:
    """The compact tables; ``bigint``, ``id_key`` and ``without_rowid`` are the dialect's
    spellings (:class:`~exporter.store.dialect.Dialect`)."""
    ids = ", ".join(f"{c} INTEGER NOT NULL" for c in USAGE_LABELS)
    sums = ", ".join(f"{c} {bigint} NOT NULL" for c in USAGE_VALUES)
    key_ids = ", ".join(f"{c} INTEGER NOT NULL" for c in (*COST_KEY_LABELS, *COST_LABELS))
    return [
        f"CREATE TABLE names (id {id_key}, name TEXT NOT NULL UNIQUE)",
        f"CREATE TABLE fx_applied (id {id_key}, currency TEXT NOT NULL, "
        "rate TEXT NOT NULL, rate_date TEXT NOT NULL, source TEXT NOT NULL, "
        "error TEXT NOT NULL, UNIQUE (currency, rate, rate_date, source, error))",
        f"CREATE TABLE usage_rows (day INTEGER NOT NULL, stream INTEGER NOT NULL, {ids}, "
        f"{sums}, PRIMARY KEY ({', '.join(USAGE_PK)})){without_rowid}",
        f"CREATE TABLE cost_rows (day INTEGER NOT NULL, stream INTEGER NOT NULL, {key_ids}, "
        f"amount {bigint}, amount_exact TEXT, fx INTEGER, fx_status INTEGER, "
        f"fx_amount {bigint}, fx_amount_exact TEXT, "
        f"PRIMARY KEY ({', '.join(COST_PK)})){without_rowid}",
        f"CREATE INDEX cost_rows_fx_pending ON cost_rows (day) WHERE {ROW_FX_PENDING}",
    ]


def view_ddl(day_text: str, money: str) -> list[str]:
    """Views with the old tables' columns over the compact ones. ``day_text`` formats the
    integer day column ``{0}`` as ISO text; ``money`` formats units ``{0}`` / exact ``{1}``."""

    def label(alias: str, column: str) -> str:
        return f"(SELECT name FROM names WHERE id = {alias}.{column}) AS {column}"

    usage = ", ".join(
        [
            "s.provider AS provider", "s.account AS account",
            f"{day_text.format('u.day')} AS day", "s.project AS project", "s.model AS model",
            *(label("u", c) for c in USAGE_LABELS[:4]), label("u", "unit"),
            *(f"u.{c} AS {c}" for c in USAGE_VALUES),
        ]
    )  # fmt: skip
    status = "CASE c.fx_status " + " ".join(
        f"WHEN {i} THEN '{s}'" for i, s in enumerate(FX_STATUSES)
    )
    costs = ", ".join(
        [
            "s.provider AS provider", "s.account AS account",
            f"{day_text.format('c.day')} AS day", "s.project AS project",
            label("c", "line_item"), "s.model AS model", label("c", "api_key"),
            label("c", "service_tier"), label("c", "cost_type"), label("c", "token_type"),
            f"{money.format('c.amount', 'c.amount_exact')} AS amount",
            label("c", "currency"), label("c", "attribution"),
            f"{money.format('c.fx_amount', 'c.fx_amount_exact')} AS fx_amount",
            "NULLIF(f.currency, '') AS fx_currency", "NULLIF(f.rate, '') AS fx_rate",
            "NULLIF(f.rate_date, '') AS fx_rate_date", "NULLIF(f.source, '') AS fx_source",
            f"{status} END AS fx_status", "NULLIF(f.error, '') AS fx_error",
        ]
    )  # fmt: skip
    return [
        f"CREATE VIEW usage AS SELECT {usage} FROM usage_rows u JOIN streams s ON s.id = u.stream",
        f"CREATE VIEW costs AS SELECT {costs} FROM cost_rows c JOIN streams s "
        "ON s.id = c.stream LEFT JOIN fx_applied f ON f.id = c.fx",
    ]
