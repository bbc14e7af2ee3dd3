"""``candor calibrate`` starts its own server with the serving defaults, and every way it
can fail to start ends in one line, never a traceback (no engine is started here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.calibration.pinning import ServingSettings, serving_settings
from service.calibration.server import ServerStartError, local_server, server_env
from service.config import Settings
from service.main import cli


@pytest.mark.parametrize("max_tokens", [8, 16, 64, 128, 2000])
def test_the_auto_started_server_accepts_its_own_settings(max_tokens: int) -> None:
    """The README's `--max-tokens 16` once made the server reject its own settings."""
    env = server_env({"PATH": "/usr/bin"}, 8123, max_tokens)
    settings = Settings.model_validate(
        {k[len("CANDOR_"):].lower(): v for k, v in env.items() if k.startswith("CANDOR_")})
    assert settings.max_tokens_limit >= max_tokens and settings.port == 8123


def test_the_auto_started_server_keeps_the_serving_defaults() -> None:
    """Only address, admission, budget and token limit are set: no signal setting changes."""
    base = {"PATH": "/usr/bin", "CANDOR_SAMPLE_TEMPERATURE": "0.7"}
    env = server_env(base, 8123, 16)
    keys = {k[len("CANDOR_"):].lower(): v for k, v in env.items() if k.startswith("CANDOR_")}
    assert set(keys) == {"host", "port", "max_tokens_limit", "max_budget_ms", "max_inflight",
                         "admission",
                         "sample_temperature"}
    served = serving_settings(Settings.model_validate(keys))
    assert served == serving_settings(Settings(sample_temperature=0.7))


def test_invalid_environment_settings_are_one_line() -> None:
    with pytest.raises(ServerStartError, match=r"invalid: dtype: Input should be"):
        server_env({"CANDOR_DTYPE": "int3"}, 8123, 16)


def test_a_server_that_exits_early_says_why_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with pytest.raises(ServerStartError) as err:  # the child's own settings are invalid
        with local_server(log, 16, extra_env={"CANDOR_TOP_LOGPROBS": "99"}, check=False):
            pass
    msg = str(err.value)
    assert "exited early" in msg and "TOP_LOGPROBS" in msg and "\n" not in msg, msg


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
