"""``docs/api.md`` matches the app's OpenAPI schema (endpoints, fields, status codes)."""

from __future__ import annotations

import re

import pytest

from tests.unit.api_reference import DOC, METHODS, app_openapi, documented_block, render

FIX = "regenerate with: .venv/bin/python -m tests.unit.api_reference --write"


@pytest.fixture(scope="module")
def openapi() -> dict[str, object]:
    return app_openapi()


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def test_generated_reference_matches_the_schema(openapi: dict[str, object], doc: str) -> None:
    assert documented_block(doc) == render(openapi), f"docs/api.md is stale; {FIX}"


def test_overview_names_every_endpoint(openapi: dict[str, object], doc: str) -> None:
    overview = doc.split("## Overview", 1)[1].split("\n## ", 1)[0]
    paths = openapi["paths"]
    assert isinstance(paths, dict)
    for path, ops in paths.items():
        for method in METHODS:
            if method in ops:
                assert f"`{method.upper()} {path}`" in overview, f"{method} {path} not in overview"


def test_error_table_covers_every_status_code(openapi: dict[str, object], doc: str) -> None:
    errors = doc.split("## Errors", 1)[1].split("\n## ", 1)[0]
    listed = {int(s) for s in re.findall(r"^\| (\d{3}) \|", errors, flags=re.M)}
    paths = openapi["paths"]
    assert isinstance(paths, dict)
    used = {int(code) for ops in paths.values() for op in ops.values()
            for code in op.get("responses", {}) if code.isdigit() and int(code) >= 400}
    assert used <= listed, f"status codes missing from the Errors table: {used - listed}"
    assert {401, 429, 503} <= listed


def test_render_handles_every_type_shape() -> None:
    schema = {"components": {"schemas": {"M": {"properties": {
        "a": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "b": {"type": "array", "items": {"$ref": "#/components/schemas/N"}},
        "c": {"enum": ["x", "y"]}, "d": {"const": "k"},
        "e": {"type": "object", "additionalProperties": {"type": "number"}},
    }, "required": ["b"]}}}}
    text = render(schema)
    assert "| `a` | string \\| null | no | `null` |" in text
    assert "| `b` | array of [N](#schema-n) | yes |" in text
    assert '`"x"` \\| `"y"`' in text and '`"k"`' in text and "object of number" in text


def test_every_v1_route_documents_401(openapi: dict[str, object]) -> None:
    """The auth middleware guards all of /v1 when CANDOR_API_KEYS is set; the schema says so."""
    paths = openapi["paths"]
    assert isinstance(paths, dict)
    missing = [f"{m.upper()} {p}" for p, ops in paths.items() if p.startswith("/v1/")
               for m in METHODS if m in ops and "401" not in ops[m].get("responses", {})]
    assert not missing, f"no 401 in the schema for: {missing}"
