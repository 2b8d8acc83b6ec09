"""Attribution rules: projects -> team, pool, cost owner, environment (or pool unassigned)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from exporter.analytics.attribution import attribute, project_infos
from exporter.config import ConfigErrors, validate
from exporter.records import CostRecord, ProjectRecord
from exporter.snapshot import UNASSIGNED, Attribution


def rules(*items: dict[str, Any]) -> Any:
    return validate({"attribution": list(items)}).attribution


def test_a_project_is_mapped_by_id_and_others_land_in_unassigned() -> None:
    r = rules({"match": {"project": "proj_a"}, "team": "search", "pool": "eng/search",
               "cost_owner": "ana@example.invalid", "environment": "prod"})  # fmt: skip
    assert attribute(r, ("openai", "main", "proj_a")) == Attribution(
        "search", "eng/search", "ana@example.invalid", "prod"
    )
    assert attribute(r, ("openai", "main", "proj_b")) == UNASSIGNED
    assert UNASSIGNED.pool == "unassigned" and UNASSIGNED.team == ""


def test_rules_can_be_limited_to_a_provider_and_account() -> None:
    r = rules({"match": {"provider": "openai", "account": "eu", "project": "default"},
               "team": "eu-team"})  # fmt: skip
    assert attribute(r, ("openai", "eu", "default")).team == "eu-team"
    assert attribute(r, ("openai", "us", "default")).team == ""
    assert attribute(r, ("anthropic", "eu", "default")).team == ""


def test_regex_selectors_match_the_whole_id_or_name() -> None:
    r = rules(
        {"match": {"project_name": {"regex": ".*-staging"}}, "environment": "staging"},
        {"match": {"project": {"regex": "proj_se.*"}}, "team": "search"},
    )
    assert attribute(r, ("openai", "main", "proj_x"), "search-staging").environment == "staging"
    # anchored like PromQL: a substring is not a match
    assert attribute(r, ("openai", "main", "proj_x"), "search-staging-old").environment == ""
    assert attribute(r, ("openai", "main", "proj_search")).team == "search"
    assert attribute(r, ("openai", "main", "xproj_search")).team == ""


def test_each_label_comes_from_the_first_matching_rule_that_sets_it() -> None:
    r = rules(
        {"match": {"project_name": {"regex": ".*sandbox.*"}}, "environment": "dev"},
        {"match": {"project": ["proj_a", "proj_b"]}, "team": "research", "environment": "prod"},
        {"match": {}, "cost_owner": "finops@example.invalid", "team": "platform"},
    )
    assert attribute(r, ("openai", "main", "proj_a"), "R&D sandbox") == Attribution(
        team="research", pool="unassigned", cost_owner="finops@example.invalid",
        environment="dev",
    )  # fmt: skip
    assert attribute(r, ("openai", "main", "proj_b"), "Support") == Attribution(
        "research", "unassigned", "finops@example.invalid", "prod"
    )
    assert attribute(r, ("openai", "main", "proj_z")).team == "platform"


def test_project_info_covers_listed_projects_and_projects_seen_only_in_rows() -> None:
    r = rules({"match": {"project_name": "Search"}, "team": "search", "pool": "eng/search"})
    projects = [ProjectRecord("openai", "main", "proj_a", "Search")]
    rows = [
        CostRecord("openai", "main", date(2026, 3, 1), "proj_gone", "m", "tokens", Decimal(1)),
        CostRecord("openai", "main", date(2026, 3, 1), "", "", "other", Decimal(1)),
    ]
    infos = project_infos(r, projects, rows)
    assert [(i.project, i.project_name, i.attribution.pool) for i in infos] == [
        ("", "", "unassigned"),
        ("proj_a", "Search", "eng/search"),
        ("proj_gone", "", "unassigned"),
    ]


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"match": {"project": {"regex": "proj_(a"}}, "team": "t"},
         "attribution[0].match.project: invalid regular expression: missing ), unterminated "
         "subpattern at position 5"),
        ({"match": {"projekt": "x"}, "team": "t"}, "attribution[0].match.projekt: unknown key"),
        ({"match": {"project": 7}, "team": "t"},
         "attribution[0].match.project: expected a string, a non-empty list of strings, or "
         "{regex: PATTERN}"),
        ({"match": {"project": {"regexp": "x"}}, "team": "t"},
         "attribution[0].match.project: expected a string, a non-empty list of strings, or "
         "{regex: PATTERN}"),
        ({"match": {}, "pool": "eng//search"},
         "attribution[0].pool: must be a path of names separated by '/', e.g. eng/search "
         "(letters, digits, '_', '.', '-')"),
        ({"match": {"project": "p"}},
         "attribution[0]: set at least one of team, pool, cost_owner, environment"),
        ({"match": {}, "team": "a\nb"},
         "attribution[0].team: must not contain tabs or line breaks"),
        ({"match": {}, "owner": "x", "team": "t"}, "attribution[0].owner: unknown key"),
    ],
)  # fmt: skip
def test_bad_rules_are_reported_with_their_yaml_path(rule: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        validate({"attribution": [rule]})
    assert info.value.errors == [error]
