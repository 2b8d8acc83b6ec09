"""How ``focus-1.2-columns.json`` was produced (run by hand, not by the tests).

It reads the FOCUS specification's own column pages (FinOps Foundation,
github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tag ``v1.2``) from a git clone and
keeps, per column, what the "Content constraints" table and the requirement bullets say:
feature level, whether nulls are allowed, data type, value format, allowed values, and the
requirement sentences themselves (presence and nullability are read from those in the
test). Nothing here comes from the exporter's code.

    git clone https://github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec spec
    python tests/finops/data/extract_focus_rules.py spec > tests/finops/data/focus-1.2-columns.json
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

TAG = "v1.2"


def git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", repo, *args], check=True, capture_output=True, text=True
    ).stdout


def table_rows(lines: list[str]) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in lines
        if line.strip().startswith("|") and not re.match(r"^\|[\s:|-]+\|$", line.strip())
    ]


def column(text: str) -> dict[str, object]:
    lines = text.splitlines()
    column_id = lines[lines.index("## Column ID") + 2].strip()
    start = next(
        i for i, line in enumerate(lines) if line.lower().startswith("## content constraints")
    )
    constraints: dict[str, str] = {}
    i = start + 1
    while i < len(lines) and not lines[i].startswith("## "):
        if lines[i].lower().startswith("allowed values"):
            break
        i += 1
    for row in table_rows(lines[start + 1 : i])[1:]:
        value = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", row[1])
        constraints[row[0].lower()] = value
    allowed: list[str] = []
    parents: dict[str, str] = {}
    if i < len(lines) and lines[i].lower().startswith("allowed values"):
        j = i + 1
        block = []
        while j < len(lines) and not lines[j].startswith("## "):
            block.append(lines[j])
            j += 1
        rows = table_rows(block)
        # a two-level table (ServiceSubcategory: category, subcategory, description) keeps
        # its value column and the parent each value belongs to
        at = next((k for k, h in enumerate(rows[0]) if h == "Service Subcategory"), 0)
        allowed = [row[at] for row in rows[1:]]
        if at:
            parents = {row[at]: row[0] for row in rows[1:]}
    requirements = [
        re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line.strip()[2:]).replace("*", "")
        for line in lines[: lines.index("## Column ID")]
        if line.strip().startswith("* ")
    ]
    return {
        "column": column_id,
        "feature_level": constraints.get("feature level"),
        "allows_nulls": constraints.get("allows nulls") == "True",
        "data_type": constraints.get("data type"),
        "value_format": constraints.get("value format"),
        "allowed_values": allowed,
        **({"allowed_parents": parents} if parents else {}),
        "requirements": requirements,
    }


def main(repo: str) -> None:
    commit = git(repo, "rev-parse", f"{TAG}^{{commit}}").strip()
    paths = git(repo, "ls-tree", "--name-only", TAG, "specification/columns/").split()
    columns = [column(git(repo, "show", f"{TAG}:{p}")) for p in sorted(paths) if p.endswith(".md")]
    out = {
        "source": {
            "specification": "FinOps Open Cost and Usage Specification (FOCUS) 1.2",
            "repository": "https://github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec",
            "tag": TAG,
            "commit": commit,
            "files": "specification/columns/*.md: Content constraints, Allowed values, "
            "requirement bullets",
            "attributes": {
                "DateTimeFormat": "specification/attributes/datetime_format.md: UTC, "
                "extended ISO 8601 'YYYY-MM-DDTHH:mm:ssZ'",
                "NumericFormat": "specification/attributes/numeric_format.md: integer, "
                "decimal or E notation; no '+', no commas, no symbols",
                "KeyValueFormat": "specification/attributes/key_value_format.md: a "
                "serialized JSON object, values number|string|true|false|null",
                "CurrencyFormat": "specification/attributes/currency_format.md: ISO 4217 "
                "three-letter code",
                "NullHandling": "specification/attributes/null_handling.md: null, never "
                "empty strings or placeholders",
                "ColumnHandling": "specification/attributes/column_handling.md: custom "
                "columns are prefixed 'x_'",
            },
        },
        "columns": columns,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
