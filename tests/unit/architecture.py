"""The layers of ``service/`` and the diagram of ``docs/architecture.md``, from the code.

``LAYERS`` is the one statement of the layer order: ``test_structure.py`` fails when a
module imports a layer above its own, and ``test_architecture_doc.py`` when the diagram in
``docs/architecture.md`` differs from what this module draws from the import graph. After a
change of layout:

    .venv/bin/python -m tests.unit.architecture --write
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "service"
DOC = REPO / "docs" / "architecture.md"
BEGIN = "<!-- BEGIN GENERATED DIAGRAM (python -m tests.unit.architecture --write) -->"
END = "<!-- END GENERATED DIAGRAM -->"

# Bottom to top. A module belongs to the layer of its longest listed prefix ("service"
# itself: only the package's __init__); it may import its own layer and the layers below,
# never one above (docs/architecture.md).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vocabulary", ("service.vocab",)),
    ("contract", ("service", "service.errors", "service.api_types", "service.config",
                  "service.schemas", "service.openai_schemas", "service.audit",
                  "service.engine.protocol")),
    ("domain", ("service.signals", "service.claims", "service.labelled", "service.engine")),
    ("cascade", ("service.cascade",)),
    ("calibration", ("service.calibration", "service.eval")),
    ("runtime", ("service.metrics", "service.monitoring", "service.decisions",
                 "service.admission", "service.reload",
                 "service.state", "service.drain", "service.watchdog", "service.guardian",
                 "service.bootstrap")),
    ("http", ("service.api", "service.server")),
    ("offline", ("service.offline",)),
    ("entry", ("service.main",)),
)


PURPOSE = {
    "vocabulary": "the shared words: stages, tasks, decisions, abstain reasons, why no promise",
    "contract": "errors, settings, the API's request and response models, the engine protocol",
    "domain": "uncertainty signals, claims, labelled data and graders, the engines",
    "cascade": "profiles and routing, the request plan, the stage loop, the policy",
    "calibration": "fitting, Learn-then-Test, artifacts, scope tests; evaluation reports",
    "runtime": "the app state: engine lifecycle, admission, decision log, monitors, metrics",
    "http": "routers, middleware, principals, streaming, the uvicorn server",
    "offline": "`candor calibrate` / `candor eval` and batch collection",
    "entry": "create_app() and the `candor` command",
}


def layer_of(module: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or (p != "service" and module.startswith(p + "."))
            if inside and len(p) > best:
                best, level = len(p), i
    assert level >= 0, f"{module} is in no layer: add it to LAYERS"
    return level


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{node.module}.{a.name}"
                out.add(sub if (REPO / (sub.replace(".", "/") + ".py")).exists() else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "service" or m.startswith("service.")}


def graph(top_level_only: bool) -> dict[str, set[str]]:
    mods = {module_name(p): p for p in SERVICE.rglob("*.py")}
    return {m: {i for i in imports(p, top_level_only) if i in mods and i != m}
            for m, p in mods.items()}




def unit(module: str) -> str:
    """A module's box in the diagram: its package (``cascade/``) or its own file."""
    parts = module.split(".")
    if len(parts) == 1:
        return "service/__init__.py"
    if module == "service.engine.protocol":  # the engine's protocol sits below its engines
        return "engine/protocol.py"
    return f"{parts[1]}/" if (SERVICE / parts[1]).is_dir() else f"{parts[1]}.py"


def boxes() -> dict[int, list[str]]:
    """Per layer, its boxes; a package split over layers (engine/) shows its part's name."""
    out: dict[int, set[str]] = defaultdict(set)
    for m in graph(top_level_only=False):
        out[layer_of(m)].add(unit(m))
    return {k: sorted(v) for k, v in sorted(out.items())}


def render() -> str:
    """The mermaid diagram (layers top to bottom, each with its boxes; an arrow points to
    the layers a layer may import) and the table of layers."""
    lines = ["```mermaid", "flowchart TB"]
    for i, names in sorted(boxes().items(), reverse=True):
        layer = LAYERS[i][0]
        lines.append(f'  subgraph L{i}["{layer}"]')
        lines.append("    direction LR")
        lines += [f'    L{i}_{j}["{n}"]' for j, n in enumerate(names)]
        lines.append("  end")
    order = sorted(boxes(), reverse=True)
    lines += [f"  L{a} --> L{b}" for a, b in zip(order, order[1:], strict=False)]
    lines += ["```", "", "| layer | holds | modules |", "|---|---|---|"]
    for i, names in sorted(boxes().items(), reverse=True):
        layer = LAYERS[i][0]
        mods = ", ".join(f"`{n}`" for n in names)
        lines.append(f"| {i}. {layer} | {PURPOSE[layer]} | {mods} |")
    return "\n".join(lines)


def documented() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n")


def write() -> None:
    text = DOC.read_text(encoding="utf-8")
    head, tail = text[:text.index(BEGIN) + len(BEGIN)], text[text.index(END):]
    DOC.write_text(f"{head}\n{render()}\n{tail}", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/architecture.md")
    if parser.parse_args().write:
        write()
    else:
        print(render())
