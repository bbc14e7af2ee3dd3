"""Admin routes and the reload's reach, on the fake engine: an admin key and nothing else
opens ``/v1/admin`` (no loopback rule, whatever the headers say); a reload makes the
active set exactly what its source names and says what changed; reload paths stay inside
``CANDOR_CALIBRATION_DIR``, and a path outside is refused with one body whether or not
it exists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.calibration import profiles as profiles_mod
from service.calibration.artifact import ArtifactSpec, save_artifact
from service.config import Settings
from service.errors import CalibrationError
from service.main import create_app
from service.reload import PATH_REFUSED, PathRefused, reload_sources
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.test_calibration_api import SCRIPTS
from tests.unit.test_profiles import spec

RELOAD = "/v1/admin/calibration/reload"
ADMIN, CLIENT = "adm-key", "cli-key"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_CLIENT = {"Authorization": f"Bearer {CLIENT}"}


@pytest.fixture(scope="module")
def fitted() -> ArtifactSpec:
    return spec("math", ["math"], 1)  # fitted once; the others are relabelled copies


def like(base: ArtifactSpec, profile: str, tasks: list[str], seed: int) -> ArtifactSpec:
    return base.model_copy(update={"profile": profile, "tasks": tasks, "id": f"{profile}-{seed}"})


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, fitted: ArtifactSpec) -> dict[str, Path]:
    """``cal/``: CANDOR_CALIBRATION_DIR, with ``base/`` (math + factual, the configured
    CANDOR_CALIBRATION) and ``x.json`` (a catch-all ``default`` profile, the finding's
    ``/tmp/x.json``); ``outside/``: a valid artifact no reload may read."""
    root = tmp_path_factory.mktemp("layout")
    cal, outside = root / "cal", root / "outside"
    save_artifact(fitted, cal / "base" / "math.json")
    save_artifact(like(fitted, "factual", ["factual"], 2), cal / "base" / "factual.json")
    save_artifact(like(fitted, "default", [], 5), cal / "x.json")
    save_artifact(like(fitted, "default", [], 6), outside / "secret.json")
    return {"root": root, "cal": cal, "base": cal / "base", "x": cal / "x.json",
            "outside": outside, "secret": outside / "secret.json"}


def client(calibration: object, headers: dict[str, str] | None = AS_ADMIN,
           address: tuple[str, int] = ("203.0.113.7", 4000), **kw: object) -> TestClient:
    kw = {"samples_n": 4, "calibration": calibration, "admin_keys": ADMIN,
          "api_keys": CLIENT, **kw}
    s = Settings(**kw)  # type: ignore[arg-type]
    app = create_app(s, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False, client=address, headers=headers)


@pytest.fixture
def based(layout: dict[str, Path]) -> Iterator[TestClient]:
    with client(layout["base"], calibration_dir=layout["cal"]) as c:
        yield c


def open_task(c: TestClient) -> dict:
    r = c.post("/v1/answer", json={"question": "k01", "task": "open"})
    assert r.status_code == 200, r.text
    return dict(r.json()["calibration"])


# -- who may call /v1/admin ----------------------------------------------------------------

def test_a_client_key_is_refused_and_an_admin_key_is_served(based: TestClient,
                                                            layout: dict[str, Path]) -> None:
    before = based.get("/v1/calibration").json()["calibrations"]
    r = based.post(RELOAD, json={"source": "x.json"}, headers=AS_CLIENT)
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["type"] == "permission_error" and "CANDOR_ADMIN_KEYS" in err["message"]
    assert based.get("/v1/calibration").json()["calibrations"] == before  # nothing loaded
    assert based.post("/v1/answer", json={"question": "k01"},
                      headers=AS_CLIENT).status_code == 200  # the client key still serves
    assert based.post(RELOAD, headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = based.post(RELOAD, headers=AS_ADMIN)
    assert ok.status_code == 200 and ok.json()["unchanged"] == ["factual", "math"]
    assert based.post("/v1/answer", json={"question": "k01"}).status_code == 200  # admin: all


@pytest.mark.parametrize("keys", [{"api_keys": ""}, {"api_keys": CLIENT}])
@pytest.mark.parametrize("headers", [
    {}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "::1"},
    {"Forwarded": "for=127.0.0.1"},
])
def test_without_admin_keys_no_caller_is_an_admin(layout: dict[str, Path], keys: dict[str, str],
                                                  headers: dict[str, str]) -> None:
    """No CANDOR_ADMIN_KEYS: a 403 even from 127.0.0.1 with every proxy header saying
    loopback (the old loopback rule trusted X-Forwarded-For from a same-host proxy)."""
    sent = {**headers, **(AS_CLIENT if keys["api_keys"] else {})}
    with client(layout["base"], headers=sent, address=("127.0.0.1", 1234),
                calibration_dir=layout["cal"], admin_keys="", **keys) as c:
        for body in (None, {"source": "none"}):
            r = c.post(RELOAD, json=body)
            assert r.status_code == 403, r.text
            err = r.json()["error"]
            assert err["type"] == "permission_error"
            assert "CANDOR_ADMIN_KEYS" in err["message"] and "SIGHUP" in err["message"]
        assert {p["profile"] for p in c.get("/v1/calibration").json()["calibrations"]} == {
            "math", "factual"}


def test_admin_keys_alone_guard_only_the_admin_routes(layout: dict[str, Path]) -> None:
    """CANDOR_ADMIN_KEYS without CANDOR_API_KEYS: client routes stay open, the admin route
    wants the admin key (401 without one or with a wrong one, even from loopback)."""
    with client(layout["base"], headers=None, address=("127.0.0.1", 1234), api_keys="",
                calibration_dir=layout["cal"]) as c:
        assert c.post("/v1/answer", json={"question": "k01"}).status_code == 200
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Forwarded-For": "127.0.0.1"}):
            r = c.post(RELOAD, headers=headers)
            assert r.status_code == 401, r.text
            assert r.json()["error"]["type"] == "authentication_error"
            assert "CANDOR_ADMIN_KEYS" in r.json()["error"]["message"]
        assert c.post(RELOAD, headers=AS_ADMIN).status_code == 200


def test_the_admin_route_documents_its_refusals(based: TestClient) -> None:
    op = based.get("/openapi.json").json()["paths"][RELOAD]["post"]
    assert {"400", "401", "403"} <= set(op["responses"])


# -- a reload reaches exactly the state it names ---------------------------------------------

@pytest.mark.parametrize("back", [None, "builtin", "none"])
def test_a_profile_a_reload_added_is_removed_by_the_next(
        based: TestClient, layout: dict[str, Path], back: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The finding: x.json's catch-all ``default`` made every task-open question its own;
    reloading builtin, none or the configured source left it in place."""
    monkeypatch.setattr(profiles_mod, "BUILTIN_DIR", layout["base"])  # fits the fake engine
    assert open_task(based)["profile"] is None  # no profile covers task open
    r = based.post(RELOAD, json={"source": "base,x.json"}).json()
    assert (r["added"], r["removed"], r["replaced"], r["unchanged"]) == (
        ["default"], [], [], ["factual", "math"])
    assert r["reloaded"] is r["changed"] is True and r["previous"] == {
        "factual": "factual-2", "math": "math-1"}
    assert r["profiles"] == {"default": "default-5", "factual": "factual-2", "math": "math-1"}
    read = [layout["base"] / "factual.json", layout["base"] / "math.json", layout["x"]]
    assert r["source"] == ",".join(str(p.resolve()) for p in read)  # the files read
    assert open_task(based)["profile"] == "default"

    r = based.post(RELOAD, json=None if back is None else {"source": back}).json()
    kept = {} if back == "none" else {"factual": "factual-2", "math": "math-1"}
    assert r["removed"] == (["default"] if kept else ["default", "factual", "math"])
    assert (r["added"], r["replaced"], r["unchanged"]) == ([], [], sorted(kept))
    assert r["profiles"] == kept and r["reloaded"] is r["changed"] is True
    assert r["source"] == {None: str(layout["base"]), "builtin": "builtin", "none": "none"}[back]
    assert open_task(based)["profile"] is None and not open_task(based)["target_risk"]
    listed = based.get("/v1/calibration").json()
    assert {c["profile"] for c in listed["calibrations"]} == set(kept)
    assert listed["calibrated"] is bool(kept)


def test_none_on_an_uncalibrated_server_reloads_nothing_and_says_so(
        layout: dict[str, Path]) -> None:
    with client("none", calibration_dir=layout["cal"]) as c:
        added = c.post(RELOAD, json={"source": "x.json"}).json()
        assert added["added"] == ["default"] and added["profiles"] == {"default": "default-5"}
        gone = c.post(RELOAD, json={"source": "none"}).json()
        assert gone["removed"] == ["default"] and gone["reloaded"] is gone["changed"] is True
        for body in ({"source": "none"}, None):  # None: CANDOR_CALIBRATION=none, re-read
            r = c.post(RELOAD, json=body)
            assert r.status_code == 200, r.text
            assert r.json() == {"reloaded": False, "changed": False, "source": "none",
                                "profiles": {}, "previous": {}, "added": [], "removed": [],
                                "replaced": [], "unchanged": [], "skipped": []}
        assert c.get("/v1/calibration").json()["calibrated"] is False


def test_a_new_artifact_for_a_served_profile_is_replaced(based: TestClient,
                                                         layout: dict[str, Path],
                                                         fitted: ArtifactSpec) -> None:
    newer = layout["cal"] / "newer"
    save_artifact(like(fitted, "math", ["math"], 3), newer / "math.json")
    save_artifact(like(fitted, "factual", ["factual"], 2), newer / "factual.json")
    r = based.post(RELOAD, json={"source": "newer"}).json()
    assert (r["added"], r["removed"], r["replaced"], r["unchanged"]) == (
        [], [], ["math"], ["factual"])
    assert (r["previous"]["math"], r["profiles"]["math"]) == ("math-1", "math-3")
    r = based.post(RELOAD, json={"source": str(newer / "math.json")}).json()  # absolute
    assert (r["removed"], r["unchanged"], r["profiles"]) == (
        ["factual"], ["math"], {"math": "math-3"})


# -- reload paths stay inside CANDOR_CALIBRATION_DIR ------------------------------------------

def test_a_path_outside_the_directory_gets_one_answer_whether_or_not_it_exists(
        layout: dict[str, Path], fitted: ArtifactSpec, tmp_path: Path) -> None:
    cal = tmp_path / "cal"
    cal.mkdir()
    (cal / "escape.json").symlink_to(layout["secret"])  # inside -> a real artifact outside
    (cal / "dangling.json").symlink_to(layout["outside"] / "missing.json")
    (cal / "loop.json").symlink_to(cal / "loop.json")
    (cal / "up").symlink_to(layout["outside"], target_is_directory=True)
    (cal / "mixed").mkdir()  # a folder inside, one entry of it linking out
    save_artifact(fitted, cal / "mixed" / "math.json")
    (cal / "mixed" / "factual.json").symlink_to(layout["secret"])
    refused = [
        str(layout["secret"]),  # exists, outside
        str(layout["outside"] / "missing.json"),  # does not exist, outside
        str(layout["outside"]),  # a folder outside
        "/etc/shadow", "/etc/no-such-file.json", "/proc/self/environ", "/",
        "escape.json", "dangling.json", "loop.json", "up/secret.json", "up", "mixed",
        "../outside/secret.json", f"../{layout['outside'].name}/missing.json",
        "mixed/../../outside/secret.json",
        str(cal / ".." / "cal" / ".." / ".." / layout["outside"].name / "secret.json"),
        f"x.json,{layout['secret']}",
    ]  # (a NUL in the source is no text at all: 422, tests/unit/test_fuzz_inputs.py)
    with client(layout["base"], calibration_dir=cal) as c:
        before = c.get("/v1/calibration").json()["calibrations"]
        bodies = set()
        for source in refused:
            r = c.post(RELOAD, json={"source": source})
            assert r.status_code == 400, (source, r.text)
            bodies.add(r.content)
        assert len(bodies) == 1, bodies  # byte-identical, existing or not
        assert json.loads(bodies.pop()) == {"error": {
            "type": "invalid_request_error", "message": PATH_REFUSED, "param": "source",
            "code": 400}}
        assert c.get("/v1/calibration").json()["calibrations"] == before
        metrics = c.get("/metrics").text
        assert f'candor_calibration_reloads_total{{outcome="rejected"}} {len(refused)}.0' in metrics


def test_paths_inside_the_directory_load_and_say_what_is_wrong(based: TestClient,
                                                               layout: dict[str, Path]) -> None:
    cal = layout["cal"]
    if not (cal / "alias.json").exists():
        (cal / "alias.json").symlink_to(cal / "x.json")  # a link that stays inside is fine
    r = based.post(RELOAD, json={"source": "alias.json"})
    assert r.status_code == 200 and r.json()["profiles"] == {"default": "default-5"}
    r = based.post(RELOAD, json={"path": "x.json"})  # the old field: named, not ignored
    assert r.status_code == 422 and "'path' is now 'source'" in r.json()["error"]["message"]
    for source, needle in (("missing.json", "no such file"), ("base/../missing.json",
                                                             "no such file"),
                           ("builtin,x.json", "not a mix")):
        r = based.post(RELOAD, json={"source": source})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "calibration_error" and needle in err["message"]
        assert err["param"] == "source"
    assert based.get("/v1/calibration").json()["id"] == "default-5"


def test_the_default_directory_is_under_the_cache_and_startup_is_not_confined(
        layout: dict[str, Path], tmp_path: Path) -> None:
    """CANDOR_CALIBRATION is the operator's: outside the directory it loads at startup and a
    reload with no source re-reads it; a client naming the same path is refused."""
    s = Settings(cache_dir=tmp_path)
    assert s.calibration_root == tmp_path / "calibration"
    with client(layout["outside"], cache_dir=tmp_path) as c:
        assert c.get("/v1/calibration").json()["id"] == "default-6"
        again = c.post(RELOAD)
        assert again.status_code == 200 and again.json()["unchanged"] == ["default"]
        r = c.post(RELOAD, json={"source": str(layout["secret"])})
        assert r.status_code == 400 and r.json()["error"]["message"] == PATH_REFUSED


def test_reload_sources_reads_like_candor_calibration(layout: dict[str, Path]) -> None:
    root = layout["cal"].resolve()
    assert reload_sources("builtin", root) == (["builtin"], False)
    assert reload_sources("none", root) == reload_sources(" , ", root) == ([], True)
    files, strict = reload_sources("base, x.json", root)
    assert strict and files == [str(root / "base" / "factual.json"),
                                str(root / "base" / "math.json"), str(root / "x.json")]
    with pytest.raises(PathRefused):
        reload_sources(str(layout["secret"]), root)
    with pytest.raises(CalibrationError, match="not a mix"):
        reload_sources("none,x.json", root)
