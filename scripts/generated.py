"""Shared by the generators: write generated files, or check them (CI fails on drift)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_or_check(files: Mapping[Path, str], *, check: bool, generator: str) -> int:
    """Write every file, or with ``check`` report the stale ones; return the exit code."""
    stale = []
    for path, text in files.items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale generated files (run scripts/{generator}):", ", ".join(stale))
        return 1
    return 0
