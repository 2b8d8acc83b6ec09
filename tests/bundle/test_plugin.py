"""The Grafana app plugin: plugin.json against Grafana's schema, the zip's layout, no drift.

No Grafana server can run here (no package in Debian or PyPI), so the plugin is checked by
Grafana's published plugin schema (tests/bundle/schemas/, source noted there), the layout
Grafana's installer unpacks, the dashboards being the generated ones, and module.js being an
AMD module whose `plugin` export is an AppPlugin (run in node against a stand-in
`@grafana/data`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "grafana" / "plugin"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "plugin.schema.json").read_text())
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))


def validate(manifest: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(manifest)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_plugin"), "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": "1798761600"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(proc.stdout.strip())


def test_committed_manifest_follows_the_schema_and_the_app_id_rule() -> None:
    manifest = json.loads((PLUGIN / "plugin.json").read_text())
    validate(manifest)
    assert manifest["type"] == "app"
    assert manifest["id"].endswith("-app") and manifest["id"].count("-") == 2
    assert manifest["info"]["logos"] == {"small": "img/logo.svg", "large": "img/logo.svg"}
    assert manifest["dependencies"]["grafanaDependency"].startswith(">=")


def test_schema_catches_what_grafana_would_refuse() -> None:
    good = json.loads((PLUGIN / "plugin.json").read_text())
    for broken in (
        {**good, "id": "AI-Cost"},  # ids are lower-case org-name-type
        {**good, "info": {**good["info"], "version": "v1"}},
        {**good, "dependencies": {}},  # grafanaDependency is required
        {**good, "extra": True},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_zip_has_the_layout_grafana_installs(built: Path) -> None:
    manifest = json.loads((PLUGIN / "plugin.json").read_text())
    plugin_id, version = manifest["id"], manifest["info"]["version"]
    assert built.name == f"{plugin_id}-{version}.zip"
    with zipfile.ZipFile(built) as zf:
        names = set(zf.namelist())
        assert {n.split("/")[0] for n in names} == {plugin_id}, "one top-level folder: the id"
        files = {n.removeprefix(f"{plugin_id}/") for n in names if not n.endswith("/")}
        assert {"plugin.json", "module.js", "img/logo.svg"} <= files
        assert not any(n.startswith("dist/") for n in files)  # Grafana would load dist/ instead
        packed = json.loads(zf.read(f"{plugin_id}/plugin.json"))
        validate(packed)
        assert packed["info"]["updated"] == "2027-01-01"  # SOURCE_DATE_EPOCH, not %TODAY%
        assert packed["info"]["version"] == version
        # every dashboard is packed byte for byte as generated, and included
        included = {i["path"] for i in packed["includes"] if i["type"] == "dashboard"}
        assert included == {f"dashboards/{p.name}" for p in DASHBOARDS}
        for path in DASHBOARDS:
            assert zf.read(f"{plugin_id}/dashboards/{path.name}") == path.read_bytes()
        assert zf.read(f"{plugin_id}/img/logo.svg").startswith(b"<svg")


def test_every_dashboard_is_a_navigation_page(built: Path) -> None:
    manifest = json.loads((PLUGIN / "plugin.json").read_text())
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    pages = [i for i in manifest["includes"] if i["type"] == "page"]
    assert {p["path"] for p in pages} == {f"/d/{uid}" for uid in uids}
    assert all(p["addToNav"] for p in pages)
    assert sum(bool(p.get("defaultNav")) for p in pages) == 1


def test_plugin_dashboards_are_the_generated_ones() -> None:
    # gen_dashboards.py --check covers grafana/plugin/ too: a hand edit there is drift
    for path in DASHBOARDS:
        assert (PLUGIN / "dashboards" / path.name).read_bytes() == path.read_bytes()
    assert {p.name for p in (PLUGIN / "dashboards").glob("*.json")} == {p.name for p in DASHBOARDS}


def test_build_refuses_a_stale_plugin_folder(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT / "scripts", copy / "scripts", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "grafana", copy / "grafana")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    stale = copy / "grafana" / "plugin" / "dashboards" / DASHBOARDS[0].name
    stale.write_text(stale.read_text().replace("AI Cost /", "Edited /", 1))
    proc = subprocess.run(
        [sys.executable, str(copy / "scripts" / "build_plugin"), "--out", str(tmp_path / "d")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1 and "stale" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_module_is_an_amd_module_exporting_an_app_plugin() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("AICOST_REQUIRE_PROMTOOL") == "1":  # scripts/test installs nodejs
            pytest.fail("node is required (scripts/test installs Debian's nodejs)")
        pytest.skip("node not installed")
    script = """
const fs = require("fs");
class AppPlugin {}
let exported = null, deps = null;
global.define = (d, factory) => { deps = d; exported = factory({ AppPlugin }); };
eval(fs.readFileSync(process.argv[1], "utf8"));
if (JSON.stringify(deps) !== '["@grafana/data"]') throw new Error("deps " + deps);
if (!(exported.plugin instanceof AppPlugin)) throw new Error("no AppPlugin export");
if (/angular|ConfigCtrl/.test(fs.readFileSync(process.argv[1], "utf8"))) throw new Error("angular");
console.log("ok");
"""
    proc = subprocess.run(
        [node, "-e", script, str(PLUGIN / "module.js")], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
