"""The cloud fakes refuse what the real services refuse (driven through the real SDKs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter.demo.bedrock import FakeBedrockServer, generate_account
from exporter.demo.vertex import FakeBigQueryServer, generate_export
from tests.helpers import cloud_extra

TODAY = date(2026, 3, 18)
PERIOD = {"Start": "2026-03-10", "End": "2026-03-18"}


@pytest.fixture
def bedrock() -> Iterator[FakeBedrockServer]:
    cloud_extra("boto3", "aws")
    now = datetime(2026, 3, 18, 12, tzinfo=UTC)
    with FakeBedrockServer(generate_account(today=TODAY, days=10), now=lambda: now) as server:
        yield server


def ce(server: FakeBedrockServer, region: str = "us-east-1", key_id: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ce",
        endpoint_url=server.base_url,
        region_name=region,
        aws_access_key_id=key_id or server.org.access_key_id,
        aws_secret_access_key=server.org.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def error_code(call: Any, **kwargs: Any) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return str(err.value.response["Error"]["Code"])


def test_cost_explorer_scope_must_be_ce_in_us_east_1(bedrock: FakeBedrockServer) -> None:
    call = ce(bedrock, region="eu-west-1").get_cost_and_usage
    args = {"TimePeriod": PERIOD, "Granularity": "DAILY", "Metrics": ["UnblendedCost"]}
    assert error_code(call, **args) == "SignatureDoesNotMatch"


def test_cost_explorer_validates_the_query(bedrock: FakeBedrockServer) -> None:
    call = ce(bedrock).get_cost_and_usage
    three = [{"Type": "DIMENSION", "Key": k} for k in ("SERVICE", "USAGE_TYPE", "REGION")]
    base = {"TimePeriod": PERIOD, "Granularity": "DAILY", "Metrics": ["UnblendedCost"]}
    assert error_code(call, **{**base, "GroupBy": three}) == "ValidationException"
    backwards = {"Start": "2026-03-18", "End": "2026-03-10"}
    assert error_code(call, **{**base, "TimePeriod": backwards}) == "ValidationException"
    contains = {
        "Dimensions": {"Key": "SERVICE", "Values": ["Bedrock"], "MatchOptions": ["CONTAINS"]}
    }
    assert error_code(call, **{**base, "Filter": contains}) == "ValidationException"


def test_a_page_token_is_bound_to_its_request(bedrock: FakeBedrockServer) -> None:
    bedrock.org.ce_page_groups = 3
    call = ce(bedrock).get_cost_and_usage
    base = {
        "TimePeriod": PERIOD,
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
    }
    token = call(**base)["NextPageToken"]
    assert call(**base, NextPageToken=token)["ResultsByTime"]
    changed = {**base, "Metrics": ["BlendedCost"]}
    assert error_code(call, **changed, NextPageToken=token) == "RequestChangedException"
    assert error_code(call, **base, NextPageToken="garbage") == "InvalidNextTokenException"


def test_amounts_are_strings_and_recent_days_estimated(bedrock: FakeBedrockServer) -> None:
    answer = ce(bedrock).get_cost_and_usage(
        TimePeriod={"Start": "2026-03-15", "End": "2026-03-19"},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    amounts = [
        g["Metrics"]["UnblendedCost"]["Amount"]
        for r in answer["ResultsByTime"]
        for g in r["Groups"]
    ]
    assert amounts and all(isinstance(a, str) for a in amounts)
    estimated = [r["Estimated"] for r in answer["ResultsByTime"]]
    assert estimated == [False, False, True, True]  # yesterday and today are not final


@pytest.fixture
def bigquery() -> Iterator[tuple[FakeBigQueryServer, Any]]:
    bq = cloud_extra("google.cloud.bigquery", "gcp")
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    with FakeBigQueryServer(generate_export(today=TODAY, days=5)) as server:
        client = bq.Client(
            project="billing-admin-01",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=server.base_url),
        )
        yield server, client


def test_bigquery_refuses_an_unknown_table_and_legacy_sql(
    bigquery: tuple[FakeBigQueryServer, Any],
) -> None:
    from google.api_core.exceptions import BadRequest, NotFound
    from google.cloud.bigquery import QueryJobConfig

    server, client = bigquery
    with pytest.raises(NotFound, match="Table"):
        client.query_and_wait(
            "SELECT 1 FROM `p.d.nope` WHERE _PARTITIONTIME >= @x", retry=None, job_retry=None
        )
    with pytest.raises(BadRequest, match="GoogleSQL"):
        client.query_and_wait(
            f"SELECT 1 FROM `{server.org.table}`",
            job_config=QueryJobConfig(use_legacy_sql=True),
            retry=None,
            job_retry=None,
        )
