"""The labelled sets ship with the project: every file in service/labelled/data/README.md's
table is there with its row count and sha256, the CLI reads them by default, and a built
wheel carries them (a plain clone and an installed package have the same data)."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from service.labelled.datasets import DATA_DIR, load_dataset
from service.main import build_parser

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| ([^|]+) \| `([0-9a-f]{64})` \|$", re.M)


def table() -> list[tuple[str, int, str, str]]:
    rows = ROW.findall((DATA_DIR / "README.md").read_text(encoding="utf-8"))
    return [(path, int(n), lic.strip(), sha) for path, n, lic, sha in rows]


def count_rows(path: Path) -> int:
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            return sum(1 for _ in csv.DictReader(f))
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def test_the_table_lists_every_data_file() -> None:
    listed = {p for p, *_ in table()}
    files = {str(p.relative_to(DATA_DIR)) for p in DATA_DIR.rglob("*")
             if p.is_file() and p.name != "README.md"}
    assert listed == files and len(listed) == 4, (listed, files)
    assert DATA_DIR.is_relative_to(REPO / "service")
    for cmd in ("calibrate", "eval"):  # the CLI reads the packaged sets unless told otherwise
        assert build_parser().parse_args([cmd, "--dataset", "gsm8k"]).data_dir == DATA_DIR


@pytest.mark.parametrize("path, rows, license_, sha", table(), ids=[r[0] for r in table()])
def test_data_file_matches_its_provenance(path: str, rows: int, license_: str,
                                          sha: str) -> None:
    f = DATA_DIR / path
    assert hashlib.sha256(f.read_bytes()).hexdigest() == sha, f"{path} changed"
    assert count_rows(f) == rows
    assert license_ in ("Apache-2.0", "MIT")


def test_named_sets_load_without_a_data_dir() -> None:
    assert len(load_dataset("qa-wikidata")) == 15355
    assert len(load_dataset("gsm8k", n=20, seed=0)) == 20


def test_a_built_wheel_carries_the_data(tmp_path: Path) -> None:
    build = REPO / "build"  # setuptools' staging folder: a stale one could hide a lost file
    shutil.rmtree(build, ignore_errors=True)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
             "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("candor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"service/labelled/data/{p}" for p, *_ in table()}
    want |= {"service/labelled/data/README.md", "service/calibration/profiles/math.json"}
    assert want <= names, want - names
