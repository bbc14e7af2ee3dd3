"""docs/architecture.md's diagram is the one the code draws (``tests/unit/architecture.py``)."""

from __future__ import annotations

import subprocess
import sys

from tests.unit.architecture import LAYERS, REPO, documented, render

FIX = "regenerate with: .venv/bin/python -m tests.unit.architecture --write"


def test_the_diagram_matches_the_code() -> None:
    assert documented() == render(), FIX


def test_every_layer_is_drawn_in_order() -> None:
    text = render()
    where = [text.index(f'["{name}"]') for name, _ in LAYERS]
    assert where == sorted(where, reverse=True)  # drawn top (entry) to bottom (vocabulary)


def test_the_documented_command_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "tests.unit.architecture"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == render()


def test_the_readme_layout_names_what_exists() -> None:
    """Every file and folder README.md's layout block names is there (and every package
    of service/ is named), so the layout cannot drift from the tree."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Layout"):]
    block = block[block.index("```\n") + 4:]
    block = block[:block.index("```")]
    named = set()
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if line.startswith("  ") and name.endswith((".py", "/")):
            named.add(name)
            assert (REPO / "service" / name).exists(), f"README layout: service/{name}"
        elif name.endswith("/") and not line.startswith(" "):
            assert (REPO / name).exists(), f"README layout: {name}"
    packages = {p.name + "/" for p in (REPO / "service").iterdir()
                if (p / "__init__.py").exists()}
    assert packages <= named, f"not in README's layout: {sorted(packages - named)}"
