"""``candor calibrate`` collects with the serving defaults of its environment, and every
way it can fail to start ends in one line, never a traceback (no engine starts here)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.calibration.collect import CollectError, CollectSettings
from service.calibration.pinning import ServingSettings, serving_settings
from service.config import Settings
from service.main import cli
from service.offline.batch import collect_local
from service.offline.collection import local_settings
from service.state import CandorState


@pytest.mark.parametrize("max_tokens", [8, 16, 64, 128, 2000])
def test_the_collection_accepts_its_own_settings(max_tokens: int) -> None:
    """The README's `--max-tokens 16` once made the auto-started server reject its own
    settings; the in-process collection takes the environment's and widens only the limit."""
    s = local_settings(max_tokens)
    assert s.max_tokens_limit >= max_tokens and s.default_max_tokens <= s.max_tokens_limit
    Settings.model_validate(s.model_dump())  # still valid as a whole


def test_the_collection_keeps_the_serving_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_SAMPLE_TEMPERATURE", "0.7")
    assert serving_settings(local_settings(16)) == serving_settings(
        Settings(sample_temperature=0.7))


def test_an_engine_that_does_not_start_is_one_line(tmp_path: Path) -> None:
    async def broken(state: CandorState) -> None:  # what bootstrap.load_engine records
        state.load_error = "RuntimeError: no model files in /nowhere"

    with pytest.raises(CollectError) as err:
        asyncio.run(collect_local([], tmp_path / "c.jsonl", CollectSettings(), Settings(),
                                  broken, progress=False))
    msg = str(err.value)
    assert "did not start: RuntimeError: no model files" in msg and "\n" not in msg


def test_calibrate_starts_its_engine_through_the_starter_it_is_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The in-process collection's engine comes from ``run_calibrate``'s ``start``
    parameter (``service.bootstrap.load_engine`` by default), not from the parser."""
    from service.main import build_parser
    from service.offline.calibrate import run_calibrate
    from tests.fakes import FakeEmbedder, FakeEngine
    from tests.unit.test_calibration_api import SCRIPTS

    data = tmp_path / "qs.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": key, "answer": "0"}) + "\n"
                            for i, key in enumerate(SCRIPTS)))
    args = build_parser().parse_args(["calibrate", "--dataset", str(data), "--collect-only",
                                      "--cache", str(tmp_path / "c.jsonl"), "--no-progress"])
    assert not hasattr(args, "start_engine")
    engine = FakeEngine(scripts=SCRIPTS)
    started: list[CandorState] = []

    async def fake(state: CandorState) -> None:
        started.append(state)
        state.attach(engine, FakeEmbedder())

    assert run_calibrate(args, start=fake) == 0
    assert json.loads(capsys.readouterr().out) == {"dataset": str(data), "n": len(SCRIPTS)}
    assert len(started) == 1 and engine.closed
    assert started[0].settings.calibration == "none"  # collected uncalibrated


def test_candor_serve_with_bad_settings_prints_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("candor")
    proc = subprocess.run([str(exe), "serve"], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "CANDOR_ABSTAIN_THRESHOLD": "0.9"})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("candor: invalid setting"), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_calibrate_with_bad_settings_prints_one_line(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("CANDOR_DTYPE", "int3")
    code = cli(["calibrate", "--dataset", "ladder", "--n", "4", "--max-tokens", "16",
                "--cache", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("candor: invalid setting CANDOR_DTYPE"), err
    assert len(err.splitlines()) == 1


def test_serving_settings_round_trip_and_fingerprint() -> None:
    s = serving_settings(Settings())
    assert ServingSettings.model_validate_json(s.model_dump_json()) == s
    other = serving_settings(Settings(samples_n=3))
    assert s.fingerprint() != other.fingerprint()
    # per-request fields do not change the fingerprint the collect cache keys on
    assert s.fingerprint() == s.model_copy(update={"answer_max_tokens": 7}).fingerprint()


@pytest.mark.parametrize("flags, needle", [
    (["--scope-level", "2"], "argument --scope-level: 2 is not in (0, 1)"),
    (["--scope-level", "x"], "argument --scope-level: 'x' is not a number"),
    (["--scope-components", "topic"], "argument --scope-components: invalid choice: 'topic'"),
])
def test_bad_scope_flags_are_one_line(flags: list[str], needle: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(["calibrate", "--dataset", "gsm8k", *flags])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and "Traceback" not in err, err
