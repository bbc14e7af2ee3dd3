"""Structure the design promises: layers that import only downward (docs/architecture.md),
no import cycles, one stage registry and one vocabulary, and a server that runs maps without
scikit-learn's fitting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.unit.architecture import LAYERS, REPO, SERVICE, graph, imports, layer_of


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


def test_layers_import_only_downward() -> None:
    g = graph(top_level_only=False)  # lazy (function-level) imports count too
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in sorted(g.items()) for d in sorted(deps)
              if layer_of(d) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_the_vocabulary_imports_nothing_of_the_project() -> None:
    assert imports(SERVICE / "vocab.py", top_level_only=False) == set()


def test_the_layer_check_can_fail() -> None:
    assert layer_of("service.calibration.fit") > layer_of("service.cascade.runner")
    assert layer_of("service.engine.protocol") < layer_of("service.engine.vllm_local")
    assert layer_of("service") < layer_of("service.state") < layer_of("service.main")


def test_nothing_reads_private_state_across_modules() -> None:
    """No ``getattr`` on the confidence model (its Protocol declares what is read) and no
    private memo between the signals and the runner (a signal returns what it found)."""
    for path in (SERVICE / "cascade").rglob("*.py"):
        text = path.read_text()
        assert "getattr(" not in text, path
    for path in SERVICE.rglob("*.py"):
        assert not re.search(r"\b_memo\b", path.read_text()), path


def test_labelled_data_sits_below_calibration_and_eval() -> None:
    g = graph(top_level_only=False)  # lazy imports count too
    pkg = {m: m.split(".")[1] if m.count(".") else "" for m in g}
    for m, deps in g.items():
        for d in deps:
            a, b = pkg[m], pkg[d]
            assert not (a == "calibration" and b == "eval"), f"{m} imports {d}"
            assert not (a == "labelled" and b in ("calibration", "eval")), f"{m} imports {d}"


def test_one_vocabulary() -> None:
    """Stage counts and names, tasks, decisions, abstain reasons and why-no-promise words
    come from service/vocab.py, not literals elsewhere."""
    literal = re.compile(r'range\(4\)|le=3\b|"0", "1", "2", "3"|N_STAGES = 4|'
                         r'"token", "consistency", "semantic", "judge"|"auto", "factual"|'
                         r'"answer", "abstain"|"low_confidence", "hopeless"|'
                         r'"uncalibrated", "unsupported"')
    for path in SERVICE.rglob("*.py"):
        if path.name == "vocab.py":
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
