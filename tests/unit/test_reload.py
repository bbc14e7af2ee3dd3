"""Hot reload and the recalibration loop on a fake engine: audited answers + feedback ->
``candor calibrate --from-log`` -> reload -> ``unverified`` until enough audited labels ->
a verdict; refused artifacts keep the old one; the admin key; in-flight requests; restart;
SIGHUP. (Who may reload and which paths: tests/unit/test_admin.py.)"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from candor_client import Calibration
from fastapi.testclient import TestClient

from service import schemas
from service.calibration.artifact import save_artifact
from service.config import Settings
from service.main import cli, create_app
from service.state import CandorState
from tests.fakes import FakeEmbedder, FakeEngine
from tests.servers import free_port, spawn
from tests.unit.test_calibration import make_spec
from tests.unit.test_calibration_api import SCRIPTS

REPO = Path(__file__).resolve().parents[2]
RELOAD = "/v1/admin/calibration/reload"
ADMIN = "adm-key"


def wrong(key: str) -> bool:
    """The fake model's answers to these questions are graded wrong (unsure ones mostly)."""
    return int(key[1:]) % 4 == 3 or int(key[1:]) > 10


def app_client(tmp: Path, **kw: object) -> TestClient:
    """Reloads read artifacts from ``tmp`` (CANDOR_CALIBRATION_DIR); every call sends the
    admin key (the reload needs it; an admin key serves the client routes too)."""
    s = Settings(samples_n=4, decision_log=tmp / "log.sqlite", monitor_min_labels=10,
                 calibration_dir=tmp, admin_keys=ADMIN, **kw)  # type: ignore[arg-type]
    app = create_app(s, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False,
                      headers={"Authorization": f"Bearer {ADMIN}"})


def ask_and_label(c: TestClient, rounds: int, policy: dict[str, object] | None = None) -> list[
        dict[str, object]]:
    out = []
    for _ in range(rounds):
        for key in SCRIPTS:
            body = c.post("/v1/answer", json={"question": key, "max_tokens": 16,
                                              "policy": policy or {}}).json()
            fb = c.post("/v1/feedback", json={"id": body["id"], "correct": not wrong(key)})
            assert fb.status_code == 200 and fb.json()["audited"] is body["audit"]
            out.append(body)
    return out


def live(c: TestClient) -> dict[str, object]:
    profiles = c.get("/v1/calibration").json()["profiles"]
    active = [p for p in profiles if p["active"]]
    assert len(active) == 1, profiles
    return active[0]


def test_the_loop_from_log_to_reload_to_a_verdict(tmp_path: Path) -> None:
    with app_client(tmp_path, audit_rate=1.0, log_text=True) as c:  # texts: the scope test
        assert c.get("/v1/calibration").json()["profiles"] == []  # uncalibrated: no promise
        ask_and_label(c, 4)  # audited, labelled, no promise yet
        out = tmp_path / "new.json"
        assert cli(["calibrate", "--from-log", str(tmp_path / "log.sqlite"), "--out", str(out),
                    "--alphas", "0.5", "0.9", "--default-alpha", "0.9",
                    "--scope-components", "question_length", "answer_length",
                    "--scope-level", "0.1"]) == 0
        new_id = json.loads(out.read_text())["id"]
        r = c.post(RELOAD, json={"source": out.name})  # relative: CANDOR_CALIBRATION_DIR
        assert r.status_code == 200, r.text
        assert r.json()["added"] == ["default"] and r.json()["previous"] == {}
        assert r.json()["profiles"] == {"default": new_id} and r.json()["reloaded"]
        st = live(c)
        assert st["calibration_id"] == new_id and st["verdict"] == "unverified"
        typed = Calibration.model_validate(c.get("/v1/calibration").json())  # the client's
        assert [(p.calibration_id, p.verdict) for p in typed.profiles] == [(new_id,
                                                                           "unverified")]
        assert st["labelled"] == 0 and st["target_risk"] == 0.9
        answers = ask_and_label(c, 1)
        answered = [a for a in answers if a["decision"] == "answer"]
        assert all(a["calibration"]["id"] == new_id and a["audit"] for a in answers)
        st = live(c)
        assert st["labelled"] == len(answered) >= 10
        assert st["errors"] == sum(1 for a, k in zip(answers, SCRIPTS, strict=True)
                                   if a["decision"] == "answer" and wrong(k))
        assert st["verdict"] in ("holding", "breached") and st["lower"] <= st["upper"]
        drift = st["drift"]
        assert drift["statistic"] == "psi" and drift["confidence"]["n"] == len(answers)
        ab = st["promises"][0]["abstention"]
        assert ab["decisions"] == len(answers) and ab["expected"] is not None
        metrics = c.get("/metrics").text
        assert f'candor_promise_labelled{{calibration_id="{new_id}",profile="default",' \
               f'target_risk="0.9"}} {float(len(answered))}' in metrics
        assert 'candor_calibration_reloads_total{outcome="ok"} 1.0' in metrics
    with app_client(tmp_path, audit_rate=1.0, calibration=out) as c:  # a restart loses nothing
        again = live(c)
        assert again["labelled"] == st["labelled"] and again["errors"] == st["errors"]
        assert again["promises"][0]["abstention"]["decisions"] == len(answers)
        assert again["drift"]["confidence"]["n"] == len(answers)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("artifacts")
    a, b = tmp / "a.json", tmp / "b.json"
    save_artifact(make_spec(400, seed=1), a)
    save_artifact(make_spec(400, seed=2).model_copy(update={"id": "artifact-b"}), b)
    return a, b


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"format": "candor-calibration", "version": 2}', "is invalid"),
    (None, "fitted for model 'other'"),
    ("", "not valid JSON"),
])
def test_a_refused_artifact_keeps_the_old_one(tmp_path: Path, artifacts: tuple[Path, Path],
                                              content: str | None, needle: str) -> None:
    a, b = artifacts
    bad = tmp_path / "bad.json"
    bad.write_text(content if content is not None else
                   json.dumps({**json.loads(b.read_text()), "model": "other"}))
    with app_client(tmp_path, calibration=a) as c:
        old = c.get("/v1/calibration").json()["id"]
        r = c.post(RELOAD, json={"source": str(bad)})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "calibration_error" and needle in err["message"]
        assert err["param"] == "source"
        assert c.get("/v1/calibration").json()["id"] == old
        assert c.post("/v1/answer", json={"question": "k01"}).json()["calibration"]["id"] == old
        assert 'candor_calibration_reloads_total{outcome="rejected"} 1.0' in c.get(
            "/metrics").text
        for path in (tmp_path / "missing.json", tmp_path):  # no file; a directory
            r = c.post(RELOAD, json={"source": str(path)})
            assert r.status_code == 400 and r.json()["error"]["type"] == "calibration_error"
        again = c.post(RELOAD).json()  # no body: re-read CANDOR_CALIBRATION (a, outside)
        assert again["unchanged"] == ["default"] and again["profiles"] == {"default": old}
        assert again["reloaded"] is True and again["changed"] is False


def test_reload_without_a_source_on_an_uncalibrated_server_loads_nothing(
        tmp_path: Path) -> None:
    with app_client(tmp_path) as c:  # CANDOR_CALIBRATION=none, re-read: still none
        r = c.post(RELOAD)
        assert r.status_code == 200, r.text
        assert (r.json()["reloaded"], r.json()["source"], r.json()["profiles"]) == (
            False, "none", {})


def test_reload_needs_an_admin_key(tmp_path: Path, artifacts: tuple[Path, Path]) -> None:
    a, b = artifacts
    s = Settings(samples_n=4, calibration=a, api_keys="k1", admin_keys="k2",  # type: ignore[arg-type]
                 calibration_dir=b.parent)
    with TestClient(create_app(s, engine=FakeEngine())) as c:
        assert c.post(RELOAD, json={"source": "b.json"}).status_code == 401
        as_client = c.post(RELOAD, json={"source": "b.json"},
                           headers={"Authorization": "Bearer k1"})
        assert as_client.status_code == 403, as_client.text
        assert as_client.json()["error"]["type"] == "permission_error"
        ok = c.post(RELOAD, json={"source": "b.json"}, headers={"Authorization": "Bearer k2"})
        assert ok.status_code == 200 and ok.json()["profiles"] == {"default": "artifact-b"}
    s = Settings(samples_n=4, calibration=a, calibration_dir=b.parent)  # no admin keys: off
    with TestClient(create_app(s, engine=FakeEngine()), client=("127.0.0.1", 4000)) as c:
        r = c.post(RELOAD, json={"source": "b.json"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        assert c.get("/v1/calibration").json()["id"] != "artifact-b"


def test_in_flight_requests_finish_on_the_artifact_they_started_with(
        artifacts: tuple[Path, Path]) -> None:
    a, b = artifacts

    async def run() -> tuple[schemas.AnswerResponse, schemas.AnswerResponse, str]:
        state = CandorState.build(Settings(samples_n=4, calibration=a,
                                           calibration_dir=b.parent))
        state.attach(FakeEngine(scripts=SCRIPTS, delay_s=0.2), FakeEmbedder())
        req = schemas.AnswerRequest(question="k01", policy={"max_stage": 3, "run_all": True})
        slow = asyncio.create_task(state.answer(req, "/v1/answer"))
        await asyncio.sleep(0.05)  # the request is inside the cascade now
        out = await state.reload_calibration(b.name)
        after = (await state.answer(req, "/v1/answer")).response
        assert out.replaced == ["default"]
        return (await slow).response, after, out.previous["default"]

    before, after, previous = asyncio.run(run())
    assert before.calibration.id == previous != "artifact-b"
    assert after.calibration.id == "artifact-b"


def test_sighup_reloads_the_artifact_file(tmp_path: Path, artifacts: tuple[Path, Path]) -> None:
    """``candor serve``-style process (uvicorn, fake engine): replace the file, SIGHUP, the
    new artifact serves; a corrupt file + SIGHUP keeps it."""
    a, b = artifacts
    live_path = tmp_path / "live.json"
    live_path.write_text(a.read_text())
    port = free_port()
    code = ("import sys, uvicorn; from pathlib import Path; from service.config import Settings;"
            "from service.main import create_app; from tests.fakes import FakeEngine;"
            "s = Settings(samples_n=4, calibration=Path(sys.argv[1]));"
            "uvicorn.run(create_app(s, engine=FakeEngine()), host='127.0.0.1', "
            "port=int(sys.argv[2]), log_level='warning')")
    proc = spawn(code, str(live_path), str(port))
    url = f"http://127.0.0.1:{port}/v1/calibration"

    def current(timeout: float = 30.0, want: str | None = None) -> str | None:
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                got = httpx.get(url, timeout=2).json()["id"]
                if want is None or got == want:
                    return str(got)
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.1)
        return got

    try:
        first = current()
        assert first is not None and first != "artifact-b"
        live_path.write_text(b.read_text())
        proc.send_signal(signal.SIGHUP)
        assert current(want="artifact-b") == "artifact-b"
        live_path.write_text("{corrupt")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None and current() == "artifact-b"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_documented_loop_commands_match_the_cli_and_the_route() -> None:
    """docs/operations.md's loop block: the `candor calibrate` line parses with the real CLI
    (its --from-log run is test_the_loop_from_log_to_reload_to_a_verdict), writes into the
    default CANDOR_CALIBRATION_DIR, and the curl line posts, with an admin key, a valid
    body naming that file to the real route."""
    import re
    import shlex

    from service.main import build_parser
    from service.schemas import ReloadRequest

    doc = (REPO / "docs" / "operations.md").read_text()
    block = doc.split("**The loop.**", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").strip().splitlines()
    calibrate = next(ln for ln in lines if ln.startswith("candor calibrate"))
    args = build_parser().parse_args(shlex.split(calibrate)[1:])
    assert args.from_log is not None and args.out is not None
    curl = shlex.split(next(ln for ln in lines if ln.startswith("curl")))
    url = next(a for a in curl if a.startswith("localhost:"))
    path = re.sub(r"^localhost:\d+", "", url)
    paths = create_app(Settings(), engine=FakeEngine()).openapi()["paths"]
    assert path in paths and "post" in paths[path]
    body = json.loads(curl[curl.index("-d") + 1])
    source = ReloadRequest.model_validate(body).source
    assert source is not None
    out = Path(args.out).expanduser()  # the shell expands the doc's ~
    root = Settings(cache_dir=Path("~/.cache/candor").expanduser()).calibration_root
    assert root / source == out and out.parent == root
    assert curl[curl.index("-H") + 1] == "Authorization: Bearer $ADMIN_KEY"
