"""OpenAI organisation Usage and Costs APIs -> records (reference implementation).

Reads, for the UTC days ``[start, end)``, with 1d buckets and ``next_page`` paging:

* usage: ``completions`` (grouped by project, model, api key, batch, service tier),
  ``embeddings``, ``images``, ``audio_speeches``, ``audio_transcriptions``;
* costs grouped by ``project_id`` and ``line_item``; each line item names its model and
  token kind (``"gpt-4o-2024-08-06, cached input"``), so a project's cost is attributed to
  models exactly. Tool lines (``"web search tool calls"``) become their own ``cost_type``
  with ``model=""``. A cost row without a line item is split over the project's models by
  requests that day (fallback, marked ``attribution="requests_split"``);
* projects (names, including archived ones) and each active project's API keys
  (names, ``last_used_at``).

Produces, e.g.::

    aicost_cost_today{provider="openai",account="openai",project="proj_x",
                      model="gpt-4o-2024-08-06",cost_type="tokens",currency="USD"} 1.25
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from exporter.clock import midnight_ts
from exporter.config import Secret
from exporter.providers.errors import ParseError
from exporter.providers.http import HttpProvider
from exporter.providers.parse import as_count, as_decimal, json_field, optional_str
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


@dataclass(frozen=True)
class _UsageSpec:
    group_by: tuple[str, ...]
    unit_field: str = ""  # non-token volume field, e.g. "images"


USAGE_ENDPOINTS: dict[str, _UsageSpec] = {
    "completions": _UsageSpec(("project_id", "model", "api_key_id", "batch", "service_tier")),
    "embeddings": _UsageSpec(("project_id", "model", "api_key_id")),
    "images": _UsageSpec(("project_id", "model", "api_key_id"), "images"),
    "audio_speeches": _UsageSpec(("project_id", "model", "api_key_id"), "characters"),
    "audio_transcriptions": _UsageSpec(("project_id", "model", "api_key_id"), "seconds"),
}

# Non-model cost lines, matched on the lower-cased line item (checked before model lines).
TOOL_LINE_ITEMS: tuple[tuple[str, str], ...] = (
    ("web search", "web_search"),
    ("file search", "file_search"),
    ("code interpreter", "code_execution"),
    ("code execution", "code_execution"),
)


@dataclass(frozen=True)
class LineItem:
    model: str
    cost_type: str
    token_type: str
    service_tier: str


def parse_line_item(text: str) -> LineItem:
    """Parse OpenAI's free-text cost ``line_item`` (not a documented grammar; be defensive).

    ``"gpt-4o-mini-2024-07-18, cached input"`` -> model, tokens, cache_read;
    ``"priority | gpt-4o, output, long context"`` -> tier "priority", output;
    ``"gpt-4o audio, input"`` -> model "gpt-4o" (modality dropped), input;
    ``"web search tool calls"`` -> model "", web_search; anything else without a comma
    -> model "", other.
    """
    rest = text.strip()
    tier = ""
    if " | " in rest:
        tier, rest = (part.strip() for part in rest.split(" | ", 1))
    lowered = rest.lower()
    for needle, cost_type in TOOL_LINE_ITEMS:
        if needle in lowered:
            return LineItem("", cost_type, "", tier)
    head, comma, kind = rest.partition(",")
    if not comma or not head.strip():
        return LineItem("", "other", "", tier)
    model = head.split()[0]
    kind = kind.strip().lower()
    if kind.startswith(("cached input", "cache read")):
        token_type = "cache_read"
    elif kind.startswith(("cache write", "cached write")):
        token_type = "cache_write"
    elif kind.startswith("input"):
        token_type = "input"
    elif kind.startswith("output"):
        token_type = "output"
    else:
        token_type = ""
    return LineItem(model, "tokens", token_type, tier)


class OpenAIProvider(HttpProvider):
    type: ClassVar[str] = "openai"
    cost_page_size: ClassVar[int] = 180  # costs take 1-180 daily buckets per page (usage 31)

    def auth_headers(self, api_key: Secret) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key.value}"}

    # -- public -------------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> FetchResult:
        usage: list[UsageRecord] = []
        for endpoint, spec in USAGE_ENDPOINTS.items():
            usage.extend(self._usage(endpoint, spec, start, end))
        usage = merge_usage(usage)
        costs = merge_costs(self._costs(start, end, usage))
        projects = self._projects()
        keys: list[ApiKeyRecord] = []
        for project in projects if self.list_api_keys else []:  # one request per project
            if project.status != "archived":
                keys.extend(self._api_keys(project.project))
        return FetchResult(start, end, usage, costs, projects, keys)

    # -- usage --------------------------------------------------------------------------

    def _usage(
        self, endpoint: str, spec: _UsageSpec, start: date, end: date
    ) -> Iterator[UsageRecord]:
        params = {
            **_window(start, end),
            "bucket_width": "1d",
            "limit": self._usage_limit,
            "group_by[]": list(spec.group_by),
        }
        label = f"usage/{endpoint}"
        for day, result, where in self._buckets(label, f"/organization/usage/{endpoint}", params):
            yield self._usage_record(endpoint, spec, day, result, where)

    def _usage_record(
        self, endpoint: str, spec: _UsageSpec, day: date, r: dict[str, Any], where: str
    ) -> UsageRecord:
        requests = as_count(r.get("num_model_requests"), f"{where}.num_model_requests", default=0)
        common: dict[str, Any] = {
            "provider": self.type,
            "account": self.account,
            "day": day,
            "project": optional_str(r, "project_id", where),
            "model": optional_str(r, "model", where),
            "source": endpoint,
            "api_key": optional_str(r, "api_key_id", where),
            "service_tier": optional_str(r, "service_tier", where),
            "batch": _batch(r.get("batch"), where),
            "requests": requests,
        }
        if spec.unit_field:
            units = as_count(r.get(spec.unit_field), f"{where}.{spec.unit_field}", default=0)
            return UsageRecord(**common, units=units, unit=spec.unit_field)
        total_in = as_count(r.get("input_tokens"), f"{where}.input_tokens")
        cached = as_count(r.get("input_cached_tokens"), f"{where}.input_cached_tokens", default=0)
        written = as_count(
            r.get("input_cache_write_tokens"), f"{where}.input_cache_write_tokens", default=0
        )
        uncached = total_in - cached - written
        if uncached < 0:
            raise ParseError(
                f"{where}: input_tokens ({total_in}) is less than cached ({cached}) "
                f"plus cache-write ({written}) tokens"
            )
        output = as_count(r.get("output_tokens"), f"{where}.output_tokens", default=0)
        return UsageRecord(
            **common,
            input_tokens=uncached,
            output_tokens=output,
            cache_read_tokens=cached,
            cache_write_tokens=written,
        )

    # -- costs --------------------------------------------------------------------------

    def _costs(self, start: date, end: date, usage: list[UsageRecord]) -> list[CostRecord]:
        params = {
            **_window(start, end),
            "bucket_width": "1d",
            "limit": self._cost_limit,
            "group_by[]": ["project_id", "line_item"],
        }
        rows: list[CostRecord] = []
        unattributed: list[CostRecord] = []
        for day, r, where in self._buckets("costs", "/organization/costs", params):
            amount_obj = r.get("amount")
            if not isinstance(amount_obj, dict):
                raise ParseError(f"{where}.amount: expected an object with value and currency")
            amount = as_decimal(amount_obj.get("value"), f"{where}.amount.value")
            currency = amount_obj.get("currency") or "usd"
            if not isinstance(currency, str) or len(currency) != 3:
                raise ParseError(f"{where}.amount.currency: expected an ISO 4217 code")
            line_item = r.get("line_item")
            if line_item is not None and not isinstance(line_item, str):
                raise ParseError(f"{where}.line_item: expected a string or null")
            project = optional_str(r, "project_id", where)
            api_key = optional_str(r, "api_key_id", where)
            if line_item:
                item = parse_line_item(line_item)
                rows.append(
                    CostRecord(
                        provider=self.type,
                        account=self.account,
                        day=day,
                        project=project,
                        model=item.model,
                        cost_type=item.cost_type,
                        amount=amount,
                        currency=currency.upper(),
                        line_item=line_item,
                        token_type=item.token_type,
                        api_key=api_key,
                        service_tier=item.service_tier,
                        attribution="line_item" if item.model else "unattributed",
                    )
                )
            else:
                unattributed.append(
                    CostRecord(
                        provider=self.type,
                        account=self.account,
                        day=day,
                        project=project,
                        model="",
                        cost_type="tokens",
                        amount=amount,
                        currency=currency.upper(),
                        api_key=api_key,
                        attribution="unattributed",
                    )
                )
        for cost in unattributed:
            rows.extend(split_by_requests(cost, usage))
        return rows

    # -- names --------------------------------------------------------------------------

    def _projects(self) -> list[ProjectRecord]:
        out = []
        params = {"limit": self.list_page_size, "include_archived": "true"}
        for p in self._list("projects", "/organization/projects", params):
            pid = p.get("id")
            if not isinstance(pid, str) or not pid:
                raise ParseError("projects: an entry has no id")
            out.append(
                ProjectRecord(
                    provider=self.type,
                    account=self.account,
                    project=pid,
                    name=str(p.get("name") or ""),
                    status=str(p.get("status") or "active"),
                    created_at=_ts(p.get("created_at"), f"projects[{pid}].created_at"),
                    archived_at=_ts(p.get("archived_at"), f"projects[{pid}].archived_at"),
                )
            )
        return out

    def _api_keys(self, project: str) -> list[ApiKeyRecord]:
        out = []
        params = {"limit": self.list_page_size, "owner_project_access": "any"}
        path = f"/organization/projects/{project}/api_keys"
        for k in self._list("projects/api_keys", path, params):
            kid = k.get("id")
            if not isinstance(kid, str) or not kid:
                raise ParseError(f"projects/{project}/api_keys: an entry has no id")
            raw_owner = k.get("owner")
            owner: dict[str, Any] = raw_owner if isinstance(raw_owner, dict) else {}
            out.append(
                ApiKeyRecord(
                    provider=self.type,
                    account=self.account,
                    key_id=kid,
                    project=project,
                    name=str(k.get("name") or ""),
                    status=str(k.get("owner_project_access") or "active"),
                    owner_type=str(owner.get("type") or ""),
                    created_at=_ts(k.get("created_at"), f"api_keys[{kid}].created_at"),
                    last_used_at=_ts(k.get("last_used_at"), f"api_keys[{kid}].last_used_at"),
                )
            )
        return out

    # -- paging -------------------------------------------------------------------------

    def _buckets(
        self, endpoint: str, path: str, params: dict[str, Any]
    ) -> Iterator[tuple[date, dict[str, Any], str]]:
        """Walk ``next_page`` cursors; yield (bucket day, result, location for errors)."""
        return self._api.bucket_results(endpoint, path, params, _bucket_day)

    def _list(self, endpoint: str, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Walk ``after=<last_id>`` list paging."""
        return self._api.list_items(endpoint, path, params, "after")


def split_by_requests(cost: CostRecord, usage: list[UsageRecord]) -> list[CostRecord]:
    """Fallback: spread a project-day cost over its models in proportion to requests.

    The parts add up exactly to the original amount (the rounding remainder goes to the
    largest share). With no usage to split by, the cost stays on ``model=""``.
    """
    weights: dict[str, int] = defaultdict(int)
    for u in usage:
        if u.day == cost.day and u.project == cost.project and u.account == cost.account:
            weights[u.model] += u.requests
    total = sum(weights.values())
    if total == 0:
        return [cost]
    models = sorted(weights, key=lambda m: (-weights[m], m))
    quantum = Decimal("1e-12")
    parts = {m: (cost.amount * weights[m] / total).quantize(quantum) for m in models[1:]}
    parts[models[0]] = cost.amount - sum(parts.values(), Decimal(0))
    return [
        CostRecord(
            provider=cost.provider,
            account=cost.account,
            day=cost.day,
            project=cost.project,
            model=m,
            cost_type="tokens",
            amount=parts[m],
            currency=cost.currency,
            api_key=cost.api_key,
            attribution="requests_split",
        )
        for m in models
        if weights[m] > 0
    ]


def _bucket_day(bucket: Any, where: str) -> date:
    start_time = json_field(bucket, "start_time", int, where)
    return datetime.fromtimestamp(int(start_time), UTC).date()


def _window(start: date, end: date) -> dict[str, int]:
    return {"start_time": midnight_ts(start), "end_time": midnight_ts(end)}


def _batch(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, bool):
        raise ParseError(f"{where}.batch: expected true, false or null")
    return "true" if value else "false"


def _ts(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    seconds = as_count(value, where)
    return datetime.fromtimestamp(seconds, UTC)
