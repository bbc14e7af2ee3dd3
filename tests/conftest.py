"""Shared pytest set-up: unit tests never import vLLM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.labelled.datasets import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
# Tests (and the servers they start) are uncalibrated unless they name artifacts; the
# shipped profiles (CANDOR_CALIBRATION=builtin, the default) have their own tests.
os.environ.setdefault("CANDOR_CALIBRATION", "none")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The labelled sets the package ships (service/labelled/data)."""
    return DATA_DIR
