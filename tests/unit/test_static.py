"""Rules the static checks rely on: the project reads nothing outside its own tree (a plain
clone has no ../shared), and every `type: ignore` left in the checked packages says why
(mypy --strict and ruff themselves run in `make check`, which `make test` runs first)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKED = ("service", "clients/python/candor_client")


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return [REPO / p for p in out if (REPO / p).is_file()]


def test_nothing_reads_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/shared/data|parents\[3\] / \"shared\"|DESIGN\.md")
    hits = []
    for path in tracked("*.py", "*.md", "Makefile", "*.toml", "*.yml", "*.yaml", ".ci/*"):
        if path.is_relative_to(REPO / "service/labelled/data") or path.name == Path(__file__).name:
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if outside.search(line):
                hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_every_type_ignore_says_why() -> None:
    bare = []
    for root in CHECKED:
        for path in (REPO / root).rglob("*.py"):
            lines = path.read_text(encoding="utf-8").splitlines()
            for i, line in enumerate(lines):
                m = re.search(r"#\s*type:\s*ignore(\[[^\]]*\])?(.*)$", line)
                if m is None:
                    continue
                reason = m.group(2).strip().lstrip("#").strip()
                above = lines[i - 1].strip() if i else ""
                if not m.group(1) or not (reason or above.startswith("#")):
                    bare.append(f"{path.relative_to(REPO)}:{i + 1}")
    assert not bare, f"type: ignore without an error code and a reason: {bare}"
