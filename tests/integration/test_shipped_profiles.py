"""The calibrated cascade out of the box: `make serve` in a scratch clone, with no CANDOR_*
setting at all, serves the shipped `math` and `factual` profiles on the real engine.

"What is 3 + 4?" is answered with a stated target risk, a 4-digit product abstains, a
factual completion goes to the factual profile, and a question no profile covers says so.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import free_port
from tests.integration.test_docs_commands import (
    clone_env,
    scratch_clone,
    stop_group,
    wait_ready,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("make-serve")
    cwd = scratch_clone(tmp / "clone")
    env = clone_env(cwd)
    port = free_port()
    env.update(CANDOR_PORT=str(port), CANDOR_HOST="127.0.0.1",  # where, not how: no signal
               CANDOR_DECISION_LOG=str(tmp / "decisions.sqlite"))  # setting is changed
    log_path = tmp / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["make", "serve"], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as c:
            wait_ready(c, proc, log_path)
            yield c
    finally:
        stop_group(proc)


def test_make_serve_loads_the_shipped_profiles(served: httpx.Client) -> None:
    body = served.get("/v1/calibration").json()
    assert body["calibrated"] is True and body["skipped"] == [], body.get("skipped")
    cals = {c["profile"]: c for c in body["calibrations"]}
    assert set(cals) == {"math", "factual"}
    assert cals["math"]["tasks"] == ["math"] and cals["factual"]["tasks"] == ["factual"]
    for c in cals.values():
        assert c["guarantee"] and c["default_supported"], c["id"]
        assert c["settings"]["chat_template"] == body["serving"]["chat_template"]


def test_what_is_3_plus_4_is_answered_with_a_promise(served: httpx.Client) -> None:
    b = served.post("/v1/answer", json={"question": "What is 3 + 4?"}).json()
    cal = b["calibration"]
    assert b["calibrated"] and cal["profile"] == "math", b
    assert cal["target_risk"] is not None and cal["reason"] is None, cal
    assert b["decision"] == "answer" and "7" in b["answer"], b
    print(f"\nSHIPPED 3+4: {b['answer']!r} confidence {b['confidence']:.3f} stage "
          f"{b['stage_reached']} target_risk {cal['target_risk']}")


def test_a_four_digit_product_abstains(served: httpx.Client) -> None:
    b = served.post("/v1/answer", json={"question": "What is 4821 x 3907?"}).json()
    assert b["calibrated"] and b["calibration"]["profile"] == "math", b
    assert b["calibration"]["target_risk"] is not None
    assert b["abstained"] and b["reason"] in ("hopeless", "low_confidence"), b
    print(f"\nSHIPPED 4821x3907: {b['answer']!r} confidence {b['confidence']:.3f} stage "
          f"{b['stage_reached']}")


def test_factual_and_uncovered_questions(served: httpx.Client) -> None:
    b = served.post("/v1/answer", json={"question": "The capital of France is",
                                        "task": "factual"}).json()
    assert b["calibrated"] and b["calibration"]["profile"] == "factual", b
    assert b["calibration"]["target_risk"] is not None
    b = served.post("/v1/answer", json={"question": "Write a haiku.", "task": "open",
                                        "policy": {"max_stage": 0}, "max_tokens": 8}).json()
    assert b["calibrated"] is False and "no calibration profile covers task 'open'" in (
        b["calibration"]["reason"])
    r = served.post("/v1/answer", json={"question": "What is 3 + 4?",
                                        "policy": {"profile": "legal"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "policy.profile"
