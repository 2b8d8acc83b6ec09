"""Merging alerting/alertmanager.example.yml into an existing Alertmanager config, as the
README's "Add to an existing stack" says: the AICost sub-route first under the root route,
the aicost-* receivers added, the inhibit rules appended. Used by the amtool test and the
end-to-end stack (a real Alertmanager runs the merged config).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "alerting" / "alertmanager.example.yml"

# Another organisation's config: a catch-all root receiver and a payments team route that
# must keep receiving its own alerts (severity critical included) after the merge.
EXISTING: dict[str, Any] = {
    "route": {
        "receiver": "ops-default",
        "group_by": ["alertname", "cluster"],
        "routes": [
            {"matchers": ['team="payments"'], "receiver": "payments-oncall"},
            {"matchers": ['severity="critical"'], "receiver": "ops-pager"},
        ],
    },
    "receivers": [
        {"name": "ops-default", "webhook_configs": [{"url": "http://ops.invalid/hook"}]},
        {"name": "payments-oncall", "webhook_configs": [{"url": "http://payments.invalid/hook"}]},
        {"name": "ops-pager", "webhook_configs": [{"url": "http://ops-pager.invalid/hook"}]},
    ],
    "inhibit_rules": [
        {
            "source_matchers": ['alertname="ClusterDown"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["cluster"],
        }
    ],
}


def merged(existing: dict[str, Any] = EXISTING) -> dict[str, Any]:
    """``existing`` with the example's AICost sub-route, receivers and inhibit rules."""
    example = yaml.safe_load(EXAMPLE.read_text())
    placeholder = example["route"]["receiver"]  # the example's stand-in for the user's root
    (sub_route,) = example["route"]["routes"]
    out = copy.deepcopy(existing)
    out["route"]["routes"] = [sub_route, *out["route"].get("routes", [])]
    out["receivers"] = [
        *out["receivers"],
        *(r for r in example["receivers"] if r["name"] != placeholder),
    ]
    out["inhibit_rules"] = [*out.get("inhibit_rules", []), *example["inhibit_rules"]]
    return out
