"""Every calibrate/eval command of README.md and docs/, run as written (only ``--n`` is
smaller, and ``--server URL`` is the session server), in scratch directories laid out like
a fresh clone: the README's calibrate -> eval -> serve flow (``candor calibrate`` collects
in process with the serving defaults, ``candor eval`` judges the artifact on its held-out
questions, ``CANDOR_CALIBRATION=... make serve`` serves it with a promise), the shipped
profiles' commands and docs/results.md's earlier ones. The ``--from-log`` commands run in
test_monitoring.py (they need the recalibrated session server)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.docs_commands import REPO, blocks, doc_commands
from tests.integration.conftest import LiveServer, free_port

pytestmark = pytest.mark.integration
N = 20  # the README says 300: same flags, fewer questions (collection is most of the time)


def readme_flow() -> list[str]:
    lines = [c.line for c in doc_commands() if c.source.startswith("README.md")]
    flow = [ln for ln in lines if " calibrate " in ln or " eval " in ln]
    assert len(flow) == 2, flow
    text = (REPO / "README.md").read_text()
    flow += [ln.strip() for _, block in blocks(text) for ln in block
             if ln.strip().startswith("CANDOR_CALIBRATION=") and ln.strip().endswith("make serve")]
    assert len(flow) == 3, flow
    return [small(ln) for ln in flow]


def small(line: str) -> str:
    return re.sub(r"--n \d+", f"--n {N}", line)


def calibration_md_flow() -> list[str]:
    """docs/calibration.md's ladder calibrate/eval commands (its --from-log one needs a
    labelled decision log: tests/unit/test_calibration_api.py runs that form; the shipped
    profiles' commands: test_shipped_profile_commands)."""
    lines = [c.line for c in doc_commands() if c.source.startswith("calibration.md")]
    flow = [small(ln) for ln in lines if "--dataset ladder " in ln]
    assert len(flow) == 2, lines
    return flow


def scratch_clone(tmp: Path) -> Path:
    """A plain ``git clone`` of this repository into ``tmp`` (no sibling folders beside it),
    sharing the installed ``.venv``; run its commands with ``clone_env``, which puts the
    clone's own packages first on the path, so they run the clone's code and data."""
    inputs = ("Makefile", "pyproject.toml", "clients/python/pyproject.toml",
              "requirements/lock.txt", "requirements/model.txt")
    stamp = REPO / ".venv" / ".candor-installed"
    stale = [rel for rel in inputs
             if not stamp.exists() or (REPO / rel).stat().st_mtime > stamp.stat().st_mtime]
    if stale:  # the clone's `make` would reinstall the shared venv, editable into the clone
        pytest.fail(f"the shared .venv is older than {', '.join(stale)}: run `make install` "
                    "first (`make test` does)")
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(tmp)], check=True, timeout=120)
    (tmp / ".venv").symlink_to(REPO / ".venv")
    # `make serve` in the clone must find the shared venv installed: the stamp's inputs keep
    # the times they have here (a clone's files are newer than the stamp).
    for rel in inputs:
        st = (REPO / rel).stat()
        os.utime(tmp / rel, (st.st_atime, st.st_mtime))
    return tmp


def clone_env(clone: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) without CANDOR_* settings, with the clone's
    packages (``service``, ``candor_client``) ahead of the installed ones and the venv's
    commands (``candor``) on the PATH."""
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("CANDOR_")}
    env["PYTHONPATH"] = f"{clone}:{clone / 'clients' / 'python'}"
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env


def wait_ready(c: httpx.Client, proc: subprocess.Popen[bytes], log: Path,
               timeout: float = 420) -> None:
    """Until ``/readyz`` is 200; fails with the log's tail if the process exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if c.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail("not ready:\n" + log.read_text()[-3000:])


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group ``proc`` leads, if anything of it still runs (a failed
    start must surface as its own error, not as a ProcessLookupError here)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def run(line: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"`{line}` failed:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def test_readme_calibrate_eval_serve(tmp_path: Path) -> None:
    calibrate, evaluate, serve = readme_flow()
    cwd = scratch_clone(tmp_path / "clone")
    env = clone_env(cwd)
    env["CANDOR_KV_CACHE_GIB"] = "2"

    t0 = time.monotonic()
    out = json.loads(run(calibrate + " --no-progress", cwd, env, 900))
    artifact = json.loads((cwd / "runs/calibration/ladder.json").read_text())
    assert out["id"] == artifact["id"] and artifact["settings"]["answer_max_tokens"] == 16
    assert artifact["settings"]["chat_template"], "pinned from the in-process engine"
    assert "mu" in artifact["feasibility"] and artifact["n"] == N
    t_cal = time.monotonic() - t0

    summary = json.loads(run(evaluate + " --no-progress", cwd, env, 300).split("report:")[0])
    held = len(artifact["split_keys"]["heldout"])
    assert summary["n"] == held and summary["excluded_fitted"] == N - held
    assert (cwd / "runs/eval/ladder/report.html").exists()

    # docs/calibration.md's commands: same questions and settings, so from the cache
    md_calibrate, md_eval = calibration_md_flow()
    out = json.loads(run(md_calibrate + " --no-progress", cwd, env, 300))
    artifact = json.loads((cwd / "runs/calibration/ladder.json").read_text())
    assert out["id"] == artifact["id"] and artifact["default_alpha"] == 0.3
    run(md_eval + " --no-progress", cwd, env, 300)

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(["bash", "-c", serve], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**env, "CANDOR_PORT": str(port), "CANDOR_HOST": "127.0.0.1"},
                            start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            wait_ready(c, proc, tmp_path / "serve.log")
            info = c.get("/v1/calibration").json()
            assert info["calibrated"] and info["id"] == artifact["id"]
            body = c.post("/v1/answer", json={"question": "What is 3 + 4?",
                                              "policy": {"max_stage": 0}}).json()
            cal = body["calibration"]  # served at the calibrated max_tokens=16 by default
            assert cal["id"] == artifact["id"]
            assert cal["reason"] is None or not cal["reason"].startswith("settings"), cal
    finally:
        stop_group(proc)
    print(f"README flow: calibrate {t_cal:.0f} s (in-process engine), eval on {held} held-out")


def test_shipped_profile_commands(tmp_path: Path) -> None:
    """docs/results.md's commands that fit and judge the shipped profiles, as written but
    with --n N (the profiles themselves took 450 and 600 questions) and the output paths
    inside a scratch clone: each calibrate collects all four stages in process."""
    lines = [c.line for c in doc_commands() if c.source.startswith("results.md")
             and "service/calibration/profiles/" in c.line]
    assert len(lines) == 4, lines  # calibrate math, factual; eval math, factual
    cwd = scratch_clone(tmp_path / "clone")
    env = clone_env(cwd)
    env["CANDOR_KV_CACHE_GIB"] = "2"
    for line in sorted(lines, key=lambda ln: " eval " in ln):  # fit before judging
        out = run(small(line) + " --no-progress", cwd, env, 900)
        if " calibrate " in line:
            art = json.loads(out)
            assert art["default_alpha"] in (0.3, 0.5) and art["default_alpha_rule"] == "fixed"
    for profile in ("math", "factual"):
        spec = json.loads((cwd / f"service/calibration/profiles/{profile}.json").read_text())
        assert spec["profile"] == profile and spec["tasks"] == [profile] and spec["n"] == N
        assert spec["settings"]["samples_n"] == 10 and spec["max_stage"] == 3
        assert (cwd / f"runs/eval/{profile}/report.html").exists()


def test_results_md_commands(live_server: LiveServer, tmp_path: Path) -> None:
    """docs/results.md's earlier calibrate/eval commands, as written but with a small --n
    and `--server URL` pointing at the session server. Their evals read the cache a
    collection filled ("the commands re-derive the numbers without the engine once the
    cache is filled"): where the page shows no collect line, the same collection is run
    first against the session server, whose settings the commands' environment shares."""
    lines = [c.line for c in doc_commands() if c.source.startswith("results.md")
             and (" calibrate " in c.line or " eval " in c.line)
             and "service/calibration/profiles/" not in c.line]
    assert len(lines) == 8, lines
    cwd = scratch_clone(tmp_path / "clone")
    paths = clone_env(cwd)  # the server's own settings stay: the commands share them
    env = {**live_server.env, "PYTHONPATH": paths["PYTHONPATH"], "PATH": paths["PATH"]}
    for line in lines:
        fits = " calibrate " in line and "--collect-only" not in line
        cmd = re.sub(r"--n \d+", f"--n {N if fits else 12}", line)
        cmd = cmd.replace("--server URL", f"--server {live_server.url}")
        if "--server" not in cmd:  # fill its cache the way the page's collections did
            args = re.findall(r"--(?:dataset|n|max-stage|max-tokens) \S+", cmd)
            run(f"candor calibrate --collect-only --server {live_server.url} {' '.join(args)}"
                " --no-progress", cwd, env, 900)
        out = run(cmd + " --no-progress", cwd, env, 900)
        if fits:
            assert json.loads(out)["artifact"] == "docs/img/calibration/ladder-artifact.json"
    for report in ("ladder", "gsm8k", "truthfulqa", "truthfulqa-t04", "ladder-cascade"):
        assert (cwd / f"docs/img/calibration/{report}/report.html").exists(), report


def test_a_named_dataset_calibrates_in_a_plain_clone(tmp_path: Path) -> None:
    """docs/calibration.md's quick look at a named dataset, verbatim, in a plain clone with
    nothing beside it: the data ship with the code, so the command needs no other folder."""
    line = next(c.line for c in doc_commands() if c.source.startswith("calibration.md")
                and "--dataset gsm8k" in c.line)
    cwd = scratch_clone(tmp_path / "clone")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clone"]
    env = clone_env(cwd)
    env["CANDOR_KV_CACHE_GIB"] = "2"
    where = run("python -c 'import service.labelled.datasets as d; print(d.DATA_DIR)'",
                cwd, env, 60)
    assert Path(where.strip()) == cwd / "service/labelled/data"
    run(line + " --no-progress", cwd, env, 900)
    art = json.loads((cwd / "x.json").read_text())
    assert art["dataset"] == "gsm8k" and art["n"] == 20 and art["max_stage"] == 0

