"""Attribution: which team, pool, cost owner and environment a project belongs to.

Config ``attribution:`` is an ordered list of rules; each matches projects by provider,
account, project id and/or project name (exact values or anchored regexes) and sets some
of ``team``, ``pool``, ``cost_owner``, ``environment``. Each label of a project comes from
the **first matching rule that sets it**, so one rule can say "everything named *-staging
is environment staging" and another "project X belongs to team search". A project no rule
gives a pool lands in the pool ``unassigned``; unset labels are empty.

The result reaches Prometheus only through ``aicost_project_info`` (stream series stay
lean); recording rules and dashboards join it with ``group_left``. Budgets scope by these
labels directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from exporter.config import AttributionRule
from exporter.records import CostRecord, ProjectRecord, UsageRecord
from exporter.snapshot import Attribution, ProjectInfo

LABELS: tuple[str, ...] = ("team", "pool", "cost_owner", "environment")

ProjectKey = tuple[str, str, str]  # provider, account, project


def _rule_matches(rule: AttributionRule, key: ProjectKey, name: str) -> bool:
    m = rule.match
    checks = (
        (m.provider, key[0]),
        (m.account, key[1]),
        (m.project, key[2]),
        (m.project_name, name),
    )
    return all(sel is None or sel.matches(value) for sel, value in checks)


def attribute(rules: Sequence[AttributionRule], key: ProjectKey, name: str = "") -> Attribution:
    """The labels of one project: each from the first matching rule that sets it."""
    found: dict[str, str] = {}
    for rule in rules:
        if len(found) == len(LABELS):
            break
        if not _rule_matches(rule, key, name):
            continue
        for label in LABELS:
            value = getattr(rule, label)
            if value is not None and label not in found:
                found[label] = value
    return Attribution(**found)


def project_infos(
    rules: Sequence[AttributionRule],
    projects: Iterable[ProjectRecord],
    rows: Iterable[CostRecord | UsageRecord] = (),
    keys: Iterable[ProjectKey] = (),
) -> list[ProjectInfo]:
    """Every known project with its name and attribution, sorted.

    Known = listed by the provider (``projects``) or seen in a usage/cost row, so a project
    with spend but no listing (deleted, or ``""`` for unattributed rows) still gets its
    ``aicost_project_info`` series and joins land in ``unassigned`` instead of vanishing.
    ``keys``: more (provider, account, project)s seen with data (the refresh cube's).
    """
    names: dict[ProjectKey, str] = {(p.provider, p.account, p.project): p.name for p in projects}
    for row in rows:
        names.setdefault((row.provider, row.account, row.project), "")
    for key in keys:
        names.setdefault(key, "")
    return [
        ProjectInfo(*key, project_name=name, attribution=attribute(rules, key, name))
        for key, name in sorted(names.items())
    ]
