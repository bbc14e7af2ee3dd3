"""Claims mode on the real engine (the session server, uncalibrated): docs/claims.md's
curl command, verbatim but for the server's address. A three-part arithmetic request
gets one claim per part, each with its own confidence from its own tokens and its support
among the stage-1 samples, and the response says why no claim-level promise applies (no
claim calibration is served)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "claims.md"


def doc_curl() -> list[str]:
    """The first curl command of docs/claims.md (its continuation lines joined)."""
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("```bash\ncurl"):].split("```")[1].removeprefix("bash\n")
    return shlex.split(block.replace("\\\n", " "))


def test_the_documented_three_part_request_gets_a_confidence_per_part(
        live_server: LiveServer) -> None:
    argv = [live_server.url + "/v1/answer" if a.startswith("http://127.0.0.1:8000") else a
            for a in doc_curl()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    body = json.loads(done.stdout)
    claims, answer = body["claims"], body["answer"]
    items = claims["items"]
    assert [c["part"] for c in items] == [1, 2, 3], answer  # the model numbers its lines
    for c in items:
        start, end = c["span"]
        assert answer[start:end] == c["text"]
        assert 0.0 <= c["confidence"] <= 1.0 and c["kept"] is True
        sig = c["signals"]
        assert sig["claim_n_tokens"] >= 1 and sig["claim_mean_nll"] >= 0
        assert 0.0 <= sig["support"] <= 1.0  # samples were drawn for the claims
    # each claim reads its own tokens, not the answer's
    assert sum(c["signals"]["claim_n_tokens"] for c in items) < body["signals"]["n_tokens"]
    assert claims["answer"] == answer.strip() and claims["calibrated"] is False
    assert claims["target_risk"] is None and claims["reason"].startswith("uncalibrated:")
    assert body["usage"]["completion_tokens"] > body["signals"]["n_tokens"]  # samples counted


def test_the_documented_claims_calibration_fits_a_claims_section(
        live_server: LiveServer, tmp_path: Path) -> None:
    """docs/claims.md's token-only `candor calibrate` command as written, but with --n 24
    and --server pointing at the session server (collection is most of the time): the
    multi-part answers of the real model are collected in claims mode, each claim graded
    against its part, and the artifact gets its claims section. (Its stage-1 twin differs
    by --max-stage alone: the CLI parses it, test_docs_commands.py; claims mode with
    samples on this engine: the curl test above; collected and fitted with support:
    tests/unit/test_claims_calibration.py.)"""
    import os
    import re
    import sys

    from tests.docs_commands import doc_commands

    line = next(c.line for c in doc_commands() if c.source.startswith("claims.md")
                and " calibrate " in c.line and "--max-stage 0" in c.line)
    cmd = re.sub(r"--n \d+", "--n 24", line) + f" --server {live_server.url} --no-progress"
    env = {**live_server.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    out = json.loads(done.stdout)
    art = json.loads((tmp_path / out["artifact"]).read_text())
    assert art["profile"] == "parts" and art["tasks"] == ["math"] and art["n"] == 24
    claims = art["claims"]
    assert claims["alpha"] == 0.1 and claims["map"]["features"] and out["claims"]
    assert "support" not in claims["map"]["features"] and claims["min_stage"] == 0
    assert claims["test"]["answers"] >= 1 and claims["feasibility"]["claims"] >= 1
    cache = next((tmp_path / "runs" / "cache").glob("ladder-parts-*.jsonl"))
    parts = [[c["part"] for c in json.loads(row)["response"]["claims"]["items"]]
             for row in cache.read_text().splitlines()]
    assert len(parts) == 24 and sum(p[:2] == [1, 2] for p in parts) >= 20, parts
