"""Structure the design promises: no import cycles (labelled data below calibration and
eval), one stage registry, and a server that runs maps without scikit-learn's fitting."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "service"


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


def test_no_module_import_cycles() -> None:
    g = graph(top_level_only=False)  # lazy (function-level) imports count too
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in g[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, m, n]))
            if n not in state:
                visit(n, [*stack, m])
        state[m] = 2

    for m in g:
        if m not in state:
            visit(m, [])


def test_labelled_data_sits_below_calibration_and_eval() -> None:
    g = graph(top_level_only=False)  # lazy imports count too
    pkg = {m: m.split(".")[1] if m.count(".") else "" for m in g}
    for m, deps in g.items():
        for d in deps:
            a, b = pkg[m], pkg[d]
            assert not (a == "calibration" and b == "eval"), f"{m} imports {d}"
            assert not (a == "labelled" and b in ("calibration", "eval")), f"{m} imports {d}"


def test_one_stage_registry() -> None:
    """Stage counts and names come from cascade/stages.py, not literals elsewhere."""
    literal = re.compile(r'range\(4\)|le=3\b|"0", "1", "2", "3"|N_STAGES = 4|'
                         r'"token", "consistency", "semantic", "judge"')
    for path in SERVICE.rglob("*.py"):
        if path.name == "stages.py":
            continue
        hits = [ln for ln in path.read_text().splitlines() if literal.search(ln)]
        assert not hits, f"{path.relative_to(REPO)}: {hits}"


def test_the_server_runs_maps_without_sklearn_fitting(tmp_path: Path) -> None:
    from service.calibration.artifact import save_artifact
    from tests.unit.test_calibration import make_spec

    path = tmp_path / "a.json"
    save_artifact(make_spec(300), path)
    code = (
        "import sys\n"
        "from service.config import Settings\n"
        "from service.main import create_app\n"
        f"create_app(Settings(samples_n=4, calibration={str(path)!r}))\n"
        "bad = [m for m in ('service.calibration.fit', 'sklearn') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
