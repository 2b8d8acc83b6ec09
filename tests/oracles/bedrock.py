"""Expected answers for a fake Bedrock account (:class:`~FakeBedrockAccount`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from exporter.demo.bedrock import TOKEN_FIELDS, FakeBedrockAccount

TOKEN_TYPE = {f: f.removesuffix("_tokens") for f in TOKEN_FIELDS}


def truth_token_costs(
    account: FakeBedrockAccount, start: date, end: date
) -> dict[tuple[date, str, str], Decimal]:
    """USD by (day, CloudWatch model id, token type): tokens x the model's price."""
    out: dict[tuple[date, str, str], Decimal] = {}
    for row in account.usage:
        if start <= row.day < end:
            price = account.models[row.model_id].price
            for f in TOKEN_FIELDS:
                if getattr(row, f):
                    cost = Decimal(getattr(row, f)) * price.of(f) / Decimal(1_000_000)
                    out[(row.day, row.model_id, TOKEN_TYPE[f])] = cost
    return out


def truth_bedrock_other(account: FakeBedrockAccount, start: date, end: date) -> Decimal:
    """Non-token lines of Bedrock services (another Marketplace product excluded)."""
    return sum(
        (
            x.amount
            for x in account.lines
            if start <= x.day < end
            and (x.service == "Amazon Bedrock" or x.service.endswith("(Amazon Bedrock Edition)"))
        ),
        Decimal(0),
    )


def truth_tokens(
    account: FakeBedrockAccount, start: date, end: date
) -> dict[tuple[date, str, str], int]:
    return {
        (row.day, row.model_id, TOKEN_TYPE[f]): getattr(row, f)
        for row in account.usage
        if start <= row.day < end
        for f in TOKEN_FIELDS
        if getattr(row, f)
    }
