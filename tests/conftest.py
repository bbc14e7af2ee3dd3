"""Shared pytest set-up: unit tests never import vLLM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Tests (and the servers they start) are uncalibrated unless they name artifacts; the
# shipped profiles (CANDOR_CALIBRATION=builtin, the default) have their own tests.
os.environ.setdefault("CANDOR_CALIBRATION", "none")
DATA = Path(os.environ.get("CANDOR_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA
