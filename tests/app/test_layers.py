"""The import graph of the package runs one way (``scripts/check_layers.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_layers.py"


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_package_has_no_cycle_and_no_arrow_back_up() -> None:
    proc = check(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "exporter" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_lazy_import_back_up_and_a_cycle_are_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "records.py": "",
            "config.py": "def url():\n    from exporter.providers import REGISTRY\n",
            "providers/__init__.py": "from exporter.config import url\nREGISTRY = {}\n",
            "exposition.py": "from exporter.analytics.windows import x\n",
            "analytics/__init__.py": "",
            "analytics/windows.py": "from exporter.records import *\nx = 1\n",
        },
    )
    out = check(tmp_path)
    assert out.returncode == 1
    assert "cycle: exporter.config <-> exporter.providers" in out.stdout
    assert "exporter.config -> exporter.providers: runs back up" in out.stdout
    assert "exporter.exposition -> exporter.analytics.windows: forbidden" in out.stdout


def test_only_the_composition_root_wires_providers_store_fx_and_exposition(
    tmp_path: Path,
) -> None:
    wiring = "import exporter.providers, exporter.store, exporter.fx, exporter.exposition\n"
    write(
        tmp_path,
        {
            "__init__.py": "",
            "providers/__init__.py": "",
            "store/__init__.py": "",
            "fx/__init__.py": "",
            "exposition.py": "",
            "app.py": wiring,
            "cli.py": wiring,
        },
    )
    out = check(tmp_path)
    assert out.returncode == 1
    assert "exporter.cli: wires" in out.stdout and "exporter.app: wires" not in out.stdout
