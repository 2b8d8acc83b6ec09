"""Anthropic Admin API usage and cost reports -> records.

Reads, for the UTC days ``[start, end)``, with ``1d`` buckets and ``next_page`` paging
(headers ``x-api-key: <admin key>`` and ``anthropic-version: 2023-06-01``):

* ``GET /v1/organizations/usage_report/messages`` grouped by model, workspace, API key and
  service tier. ``uncached_input_tokens`` -> ``input``; the 5-minute plus the 1-hour
  ``cache_creation`` tokens -> ``cache_write``; ``cache_read_input_tokens`` ->
  ``cache_read``; ``output_tokens`` -> ``output``. The report has **no request count**, so
  ``requests`` stays 0. ``server_tool_use.web_search_requests`` becomes its own usage row
  (``source="server_tool_use"``, ``unit="web_search_requests"``) of the same stream;
* ``GET /v1/organizations/cost_report`` grouped by workspace and description. ``amount`` is
  a decimal string in **cents** (``"123.78912"`` = $1.2378912), converted exactly. Each
  row keeps its ``cost_type`` (``tokens``, ``web_search``, ``code_execution``,
  ``session_usage``; anything else -> ``other`` with a warning), its ``description`` as
  ``line_item``, its model (tool costs: ``model=""``), token type and service tier;
* workspaces (names, archived ones included) and API keys (names and status, all
  statuses; Anthropic has no ``last_used_at``).

``workspace_id: null`` is the default workspace and becomes ``project="default"``
(named "Default workspace"); ``api_key_id: null`` is Console (Workbench) usage and becomes
``api_key="console"``. Produces, e.g.::

    aicost_cost_today{provider="anthropic",account="anthropic",project="default",
                      model="claude-sonnet-4-20250514",cost_type="tokens",currency="USD"} 3.75
    aicost_cost_today{provider="anthropic",account="anthropic",project="wrkspc_01...",
                      model="",cost_type="web_search",currency="USD"} 0.42
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from exporter.config import Secret
from exporter.providers.errors import ParseError
from exporter.providers.http import HttpProvider
from exporter.providers.parse import as_count, cents, json_field, optional_str
from exporter.records import (
    ApiKeyRecord,
    CostRecord,
    FetchResult,
    ProjectRecord,
    UsageRecord,
    merge_costs,
    merge_usage,
)

log = logging.getLogger(__name__)

API_VERSION = "2023-06-01"
DEFAULT_PROJECT = "default"  # workspace_id null: the default workspace
DEFAULT_PROJECT_NAME = "Default workspace"
CONSOLE_KEY = "console"  # api_key_id null: Console (Workbench) usage, no API key

USAGE_GROUP_BY: tuple[str, ...] = ("model", "workspace_id", "api_key_id", "service_tier")
COST_GROUP_BY: tuple[str, ...] = ("workspace_id", "description")

# cost_type values kept as they are; any other becomes "other" (with a warning).
KNOWN_COST_TYPES: frozenset[str] = frozenset(
    {"tokens", "web_search", "code_execution", "session_usage"}
)

# The cost report's token_type -> our token types.
COST_TOKEN_TYPES: dict[str, str] = {
    "uncached_input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation.ephemeral_5m_input_tokens": "cache_write",
    "cache_creation.ephemeral_1h_input_tokens": "cache_write",
}


def token_type_of(value: str) -> str:
    """Map the cost report's ``token_type`` (``""`` when it is not a token line)."""
    if value in COST_TOKEN_TYPES:
        return COST_TOKEN_TYPES[value]
    if value.startswith("cache_creation"):
        return "cache_write"  # a cache duration added after this was written
    return ""


class AnthropicProvider(HttpProvider):
    type: ClassVar[str] = "anthropic"

    def auth_headers(self, api_key: Secret) -> dict[str, str]:
        return {"x-api-key": api_key.value, "anthropic-version": API_VERSION}

    # -- public -------------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> FetchResult:
        usage = merge_usage(self._usage(start, end))
        costs = merge_costs(self._costs(start, end))
        projects = [
            ProjectRecord(self.type, self.account, DEFAULT_PROJECT, DEFAULT_PROJECT_NAME),
            *self._workspaces(),
        ]
        return FetchResult(start, end, usage, costs, projects, self._api_keys())

    # -- usage --------------------------------------------------------------------------

    def _usage(self, start: date, end: date) -> Iterator[UsageRecord]:
        params = {
            **_window(start, end),
            "bucket_width": "1d",
            "limit": self._usage_limit,
            "group_by[]": list(USAGE_GROUP_BY),
        }
        path = "/v1/organizations/usage_report/messages"
        for day, r, where in self._buckets("usage_report/messages", path, params, start, end):
            yield from self._usage_records(day, r, where)

    def _usage_records(self, day: date, r: dict[str, Any], where: str) -> Iterator[UsageRecord]:
        tier = optional_str(r, "service_tier", where)
        common: dict[str, Any] = {
            "provider": self.type,
            "account": self.account,
            "day": day,
            "project": optional_str(r, "workspace_id", where) or DEFAULT_PROJECT,
            "model": optional_str(r, "model", where),
            "api_key": optional_str(r, "api_key_id", where) or CONSOLE_KEY,
            "service_tier": tier,
            "batch": ("true" if tier == "batch" else "false") if tier else "",
        }
        created = _object(r, "cache_creation", where)
        cache_write = sum(
            as_count(created.get(name), f"{where}.cache_creation.{name}", default=0)
            for name in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
        )
        yield UsageRecord(
            **common,
            source="messages",
            input_tokens=as_count(r.get("uncached_input_tokens"), f"{where}.uncached_input_tokens"),
            output_tokens=as_count(r.get("output_tokens"), f"{where}.output_tokens", default=0),
            cache_read_tokens=as_count(
                r.get("cache_read_input_tokens"), f"{where}.cache_read_input_tokens", default=0
            ),
            cache_write_tokens=cache_write,
        )
        tools = _object(r, "server_tool_use", where)
        searches = as_count(
            tools.get("web_search_requests"),
            f"{where}.server_tool_use.web_search_requests",
            default=0,
        )
        if searches:
            yield UsageRecord(
                **common, source="server_tool_use", units=searches, unit="web_search_requests"
            )

    # -- costs --------------------------------------------------------------------------

    def _costs(self, start: date, end: date) -> Iterator[CostRecord]:
        params = {
            **_window(start, end),
            "bucket_width": "1d",
            "limit": self._cost_limit,
            "group_by[]": list(COST_GROUP_BY),
        }
        unknown: set[str] = set()
        path = "/v1/organizations/cost_report"
        for day, r, where in self._buckets("cost_report", path, params, start, end):
            amount = cents(r.get("amount"), f"{where}.amount")
            currency = r.get("currency") or "USD"
            if not isinstance(currency, str) or len(currency) != 3:
                raise ParseError(f"{where}.currency: expected an ISO 4217 code")
            reported = optional_str(r, "cost_type", where)
            cost_type = reported if reported in KNOWN_COST_TYPES else "other"
            if cost_type != reported and reported not in unknown:
                unknown.add(reported)
                log.warning(
                    '%s: unknown cost_type %r (first seen %s); counted as cost_type="other"',
                    self.account,
                    reported,
                    day,
                )
            model = optional_str(r, "model", where) if cost_type == "tokens" else ""
            yield CostRecord(
                provider=self.type,
                account=self.account,
                day=day,
                project=optional_str(r, "workspace_id", where) or DEFAULT_PROJECT,
                model=model,
                cost_type=cost_type,
                amount=amount,
                currency=currency.upper(),
                line_item=optional_str(r, "description", where),
                token_type=token_type_of(optional_str(r, "token_type", where)),
                service_tier=optional_str(r, "service_tier", where),
                attribution="line_item" if model else "unattributed",
            )

    # -- names --------------------------------------------------------------------------

    def _workspaces(self) -> list[ProjectRecord]:
        out = []
        params = {"limit": self._list_limit, "include_archived": "true"}
        path = "/v1/organizations/workspaces"
        for w in self._api.list_items("workspaces", path, params, "after_id"):
            wid = w.get("id")
            if not isinstance(wid, str) or not wid:
                raise ParseError("workspaces: an entry has no id")
            archived_at = _rfc3339(w.get("archived_at"), f"workspaces[{wid}].archived_at")
            out.append(
                ProjectRecord(
                    provider=self.type,
                    account=self.account,
                    project=wid,
                    name=str(w.get("name") or ""),
                    status="archived" if archived_at else "active",
                    created_at=_rfc3339(w.get("created_at"), f"workspaces[{wid}].created_at"),
                    archived_at=archived_at,
                )
            )
        return out

    def _api_keys(self) -> list[ApiKeyRecord]:
        out = []
        params = {"limit": self._list_limit}  # no status filter: every status
        path = "/v1/organizations/api_keys"
        for k in self._api.list_items("api_keys", path, params, "after_id"):
            kid = k.get("id")
            if not isinstance(kid, str) or not kid:
                raise ParseError("api_keys: an entry has no id")
            where = f"api_keys[{kid}]"
            owner = k.get("principal") or k.get("created_by") or {}
            out.append(
                ApiKeyRecord(
                    provider=self.type,
                    account=self.account,
                    key_id=kid,
                    project=optional_str(k, "workspace_id", where) or DEFAULT_PROJECT,
                    name=str(k.get("name") or ""),
                    status=str(k.get("status") or "active"),
                    owner_type=str(owner.get("type") or "") if isinstance(owner, dict) else "",
                    created_at=_rfc3339(k.get("created_at"), f"{where}.created_at"),
                )
            )
        return out

    # -- paging -------------------------------------------------------------------------

    def _buckets(
        self, endpoint: str, path: str, params: dict[str, Any], start: date, end: date
    ) -> Iterator[tuple[date, dict[str, Any], str]]:
        """Walk ``next_page`` cursors; yield (bucket day, result, location for errors)."""

        def day_of(bucket: Any, where: str) -> date:
            text = json_field(bucket, "starting_at", str, where)
            starting_at = _rfc3339(text, f"{where}.starting_at")
            assert starting_at is not None
            day = starting_at.date()
            if not start <= day < end:
                raise ParseError(f"{where}.starting_at: {day} is outside {start}..{end}")
            return day

        return self._api.bucket_results(endpoint, path, params, day_of)


def _window(start: date, end: date) -> dict[str, str]:
    return {
        "starting_at": f"{start.isoformat()}T00:00:00Z",
        "ending_at": f"{end.isoformat()}T00:00:00Z",
    }


def _object(result: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """A nested object such as ``cache_creation``; ``null`` or absent is an empty one."""
    value = result.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{where}.{name}: expected an object or null")
    return value


def _rfc3339(value: Any, where: str) -> datetime | None:
    """An RFC 3339 timestamp (``2026-03-01T00:00:00Z``) in UTC; ``null`` gives ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where}: expected an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ParseError(f"{where}: {value[:40]!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ParseError(f"{where}: {value[:40]!r} has no UTC offset")
    return parsed.astimezone(UTC)
