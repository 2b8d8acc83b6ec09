"""Hypothesis strategies shared by the fuzz tests: mutations of real documents.

A fuzz test starts from a document the real format produces (a page a demo fake serves,
an ECB file, ``config.example.yaml``) and applies a few drawn mutations to it: a value
replaced by arbitrary JSON, a key or list item deleted, a list item duplicated, the text
cut short, bytes flipped. Close-to-valid inputs reach far deeper into a parser than random
bytes do.

Example counts are bounded (CI runs each fuzz test in seconds); ``AICOST_FUZZ_EXAMPLES``
raises them, and ``AICOST_FUZZ_RANDOM=1`` draws new examples instead of the fixed ones.
"""

from __future__ import annotations

import copy
import json
import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from exporter.demo.http import dump_json

Path = tuple[int | str, ...]


def fuzz_settings(examples: int) -> settings:
    """``examples`` in CI (fixed, reproducible); more with ``AICOST_FUZZ_EXAMPLES``."""
    scale = int(os.environ.get("AICOST_FUZZ_EXAMPLES", "0"))
    return settings(
        max_examples=max(examples, scale),
        deadline=None,
        database=None,
        derandomize=os.environ.get("AICOST_FUZZ_RANDOM") != "1",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )


# Scalars a JSON parser can hand over (numbers as Decimal, as the providers' client parses).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=6),
    st.text(max_size=12),
    st.sampled_from(["", "0", "-1", "1e309", "NaN", "2026-03-18", "page_AAAA", "tokens"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(doc: Any, prefix: Path = ()) -> list[Path]:
    """Every path into a JSON-like tree (the root is ``()``)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, (*prefix, i))
    return out


def _parent(doc: Any, path: Path) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _apply(doc: Any, path: Path, op: str, value: Any) -> Any:
    """``doc`` with one mutation at ``path`` (in place below the root)."""
    if not path:
        return value if op == "replace" else doc
    parent, last = _parent(doc, path), path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(int(last), parent[int(last)])
    elif op == "duplicate":
        parent[f"{last}_copy"] = parent[last]
    return doc


@st.composite
def mutated_tree(draw: st.DrawFn, doc: Any, *, most: int = 3) -> Any:
    """A deep copy of ``doc`` with 1..``most`` drawn mutations."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, most))):
        path = draw(st.sampled_from(paths(doc)))
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
        value = draw(json_values) if op == "replace" else None
        doc = _apply(doc, path, op, value)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` cut short, with bytes flipped, or with a drawn chunk spliced in."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate" or not body:
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    at = draw(st.integers(0, len(body) - 1))
    if kind == "flip":
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]


def mutated_json_body(body: bytes) -> st.SearchStrategy[bytes]:
    """A JSON body mutated as a tree (re-serialised exactly) or as bytes."""
    try:
        doc = json.loads(body, parse_float=Decimal)
    except ValueError:
        return mutated_bytes(body)
    trees: st.SearchStrategy[bytes] = mutated_tree(doc).map(lambda d: dump_json(d).encode())
    return st.one_of(trees, trees, mutated_bytes(body))
