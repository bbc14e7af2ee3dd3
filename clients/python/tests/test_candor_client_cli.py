"""``candor-client`` CLI on a fake transport: output, ``--json``, exit codes."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import BASE, FakeServer, answer_body, error, out_of_scope_body

from candor_client import CandorClient
from candor_client.cli import EXIT_ABSTAINED, EXIT_ERROR, EXIT_OK, main


def run(server: FakeServer, argv: list[str]) -> int:
    http = httpx.Client(transport=httpx.MockTransport(server))
    return main(argv, client=CandorClient(BASE, http_client=http, max_retries=0))


def test_ask_prints_answer_and_confidence(server: FakeServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(server, ["ask", "capital of France?", "--max-stage", "1"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Paris"
    assert lines[-1].startswith("confidence: 0.92 (uncalibrated) | decided at stage 1 "
                               "(consistency) | 710 ms | 44 tokens | id ans_0123")
    assert server.last_json()["policy"] == {"max_stage": 1}


def test_claims_mode_prints_each_claim_and_the_claim_promise(
        server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(server, ["ask", "capital of France?", "--claims"]) == EXIT_OK
    assert server.last_json()["claims"] is True
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["Paris", "  [kept 0.80] Paris", "claims: no claim-level promise "
                         "(uncalibrated: no claim calibration is served for this profile)"]
    assert lines[-1].startswith("confidence: 0.92")
    run(server, ["ask", "capital of France?"])
    assert "claims" not in server.last_json() and "claims:" not in capsys.readouterr().out


def test_abstention_has_its_own_exit_code(server: FakeServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(server, ["ask", "unsure: 17*23?"]) == EXIT_ABSTAINED
    out = capsys.readouterr().out
    assert out.startswith("[abstained: low_confidence] best guess: Paris")
    assert run(server, ["ask", "unsure: again", "--json"]) == EXIT_ABSTAINED
    assert json.loads(capsys.readouterr().out)["abstained"] is True


def test_an_out_of_scope_request_says_so(server: FakeServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    server.queue = [httpx.Response(200, json=out_of_scope_body("q"))]
    assert run(server, ["ask", "q"]) == EXIT_ABSTAINED
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[abstained: out_of_scope] best guess: Paris")
    assert out[-1].startswith("confidence: 0.31 (calibrated; out of scope: nearest factual, "
                              "p = 0.0283 < 0.05, no promise) | decided at stage 1")


def test_errors_exit_1_with_a_message(server: FakeServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    server.queue = [error(401, "authentication_error", "bad key")]
    assert run(server, ["ask", "q"]) == EXIT_ERROR
    assert "401 authentication_error: bad key" in capsys.readouterr().err


def test_health_and_calibration(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(server, ["health"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == "ready (SmolLM2-135M-Instruct)"
    server.queue = [httpx.Response(200, json={"status": "ok"}),
                    error(503, "engine_unavailable", "not ready: loading")]
    assert run(server, ["health"]) == EXIT_ERROR
    assert run(server, ["calibration"]) == EXIT_OK
    assert '"calibrated": false' in capsys.readouterr().out


def test_bad_command_line_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["ask"])
    assert info.value.code == 2


def test_multiline_answers_keep_the_confidence_line_last(
        server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    long = {**answer_body("q"), "answer": "Ten.\n\nBecause 5 + 5 = 10."}
    server.queue = [httpx.Response(200, json=long),
                    httpx.Response(200, json={**answer_body("q", abstained=True),
                                              "answer": "maybe\n 7"})]
    assert run(server, ["ask", "q"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["Ten.", "", "Because 5 + 5 = 10."] and out[-1].startswith("confidence:")
    assert run(server, ["ask", "q"]) == EXIT_ABSTAINED
    assert capsys.readouterr().out.splitlines()[0].endswith("best guess: maybe 7")
