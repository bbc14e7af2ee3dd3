"""Render the endpoint and schema reference of ``docs/api.md`` from the OpenAPI schema.

``docs/api.md`` holds this rendering between two markers; ``test_api_docs.py`` (against
the app) and ``tests/integration/test_clients.py`` (against the live server's
``/openapi.json``) fail when they differ, so the docs cannot drift. After an API change:

    .venv/bin/python -m tests.unit.api_reference --write
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m tests.unit.api_reference --write) -->"
END = "<!-- END GENERATED REFERENCE -->"
METHODS = ("get", "post", "put", "patch", "delete")


def type_of(schema: dict[str, Any]) -> str:
    """A short readable type: ``Answer``, ``string | null``, ``array of number``, ``"a" | "b"``."""
    if "$ref" in schema:
        return f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{anchor(schema['$ref'])})"
    if "anyOf" in schema:
        return " \\| ".join(type_of(s) for s in schema["anyOf"])
    if "const" in schema:
        return f'`"{schema["const"]}"`'
    if "enum" in schema:
        return " \\| ".join(f'`"{v}"`' for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    return str(kind)


def anchor(ref: str) -> str:
    return "schema-" + ref.rsplit("/", 1)[-1].lower()


def _cell(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").strip()


def _endpoint(path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    if op.get("description"):
        out += [_cell(op["description"]), ""]
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        out += [f"Request body: {type_of(body.get('schema', {}))}", ""]
    out += ["| status | meaning | body |", "|---|---|---|"]
    for status, resp in sorted(op.get("responses", {}).items()):
        content = resp.get("content", {})
        kinds = [type_of(c.get("schema", {})) if c.get("schema") else f"`{mime}`"
                 for mime, c in content.items()]
        out.append(f"| {status} | {_cell(resp.get('description', ''))} | "
                   f"{', '.join(kinds) or '-'} |")
    return out + [""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f'<a id="schema-{name.lower()}"></a>', f"### {name}", ""]
    if schema.get("description"):
        out += [_cell(schema["description"]), ""]
    props = schema.get("properties", {})
    if not props:
        return out + [f"Type: {type_of(schema)}", ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, prop in props.items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        out.append(f"| `{field}` | {type_of(prop)} | {'yes' if field in required else 'no'} | "
                   f"{_cell(default)} | {_cell(prop.get('description', ''))} |")
    return out + [""]


def render(openapi: dict[str, Any]) -> str:
    """The whole generated block (endpoints in path order, then every schema by name)."""
    lines = ["## Endpoints (generated)", ""]
    for path in sorted(openapi.get("paths", {})):
        for method in METHODS:
            op = openapi["paths"][path].get(method)
            if op is not None:
                lines += _endpoint(path, method, op)
    lines += ["## Schemas (generated)", ""]
    for name, schema in sorted(openapi.get("components", {}).get("schemas", {}).items()):
        lines += _schema(name, schema)
    return "\n".join(lines).rstrip() + "\n"


def documented_block(text: str) -> str:
    """The generated block as it stands in ``docs/api.md``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def app_openapi() -> dict[str, Any]:
    from service.config import Settings
    from service.main import create_app

    schema: dict[str, Any] = create_app(Settings()).openapi()
    return schema


def write(openapi: dict[str, Any]) -> None:
    text = DOC.read_text()
    head, tail = text[: text.index(BEGIN) + len(BEGIN)], text[text.index(END):]
    DOC.write_text(f"{head}\n{render(openapi)}\n{tail}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite docs/api.md's block")
    if parser.parse_args().write:
        write(app_openapi())
    else:
        print(render(app_openapi()))
