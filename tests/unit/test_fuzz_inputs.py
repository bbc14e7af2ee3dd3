"""Generated bad input against every endpoint of the app on the fake engine: never a 5xx.

Two parts, both deterministic (``derandomize=True``, no example database) and bounded so
the whole file runs in well under a minute on two cores:

* **Schemathesis** (positive and negative cases from the app's own OpenAPI schema, every
  operation): every response is documented and matches its schema, no 5xx, and every 4xx
  is the one error shape. The integration suite runs the same against the real engine
  (``tests/integration/test_fuzz.py``); this one runs in ``make unit`` on fakes and many
  more cases.
* **Hypothesis**: arbitrary Unicode, lone surrogates and NUL included, in every text field
  of every endpoint (chat with and without streaming, in both stream modes): a 200, or a
  4xx whose ``param`` names that field; text the engine cannot take (``api_types``) is
  always a 422 naming the field.

``FUZZ_REPORT`` (printed, ``-s``) counts the cases by operation, mode and status.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from service.api_types import text_problem
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine, Script

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

ADMIN_KEY = "fuzz-admin-key"  # opens every route, /v1/admin included
# Cases per operation and generation mode. Operations without parameters have one
# possible request (and no invalid one), so the total comes from the five POST bodies.
SCHEMATHESIS_EXAMPLES = 104
MIN_SCHEMATHESIS_CASES = 1000
TEXT_EXAMPLES = 12  # per text field (about 30 fields)

SCHEMA_TALLY: Counter[str] = Counter()  # by operation, mode and status


def fuzz_settings(n: int) -> Any:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    (tmp / "cal").mkdir()
    engine = FakeEngine(scripts={"doubt": Script(greedy="maybe 7", logprob=-1.5,
                                                 samples=["7", "8", "7", "9"])})
    s = Settings(samples_n=4, decision_log=tmp / "decisions.sqlite",  # feedback reads it
                 admin_keys=ADMIN_KEY, calibration_dir=tmp / "cal",  # type: ignore[arg-type]
                 max_inflight=64)
    app = create_app(s, engine=engine, embedder=FakeEmbedder())
    with TestClient(app, raise_server_exceptions=False,
                    headers={"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


# -- what every response must be ---------------------------------------------------------------

def assert_error_shape(resp: httpx.Response) -> dict[str, Any]:
    """A 4xx is ``{"error": {type, message, param, code}}`` with ``code`` its status."""
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"type", "message", "param", "code"}, err
    assert isinstance(err["type"], str) and err["type"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] == resp.status_code, err
    return dict(err)


def assert_served(resp: httpx.Response) -> None:
    """No 5xx, the error shape on every 4xx, and no error event inside a 200 stream."""
    assert resp.status_code < 500, resp.text[:500]
    if resp.status_code >= 400:
        assert_error_shape(resp)
    elif resp.headers.get("content-type", "").startswith("text/event-stream"):
        assert '"internal_error"' not in resp.text, resp.text[:500]


# -- schemathesis -------------------------------------------------------------------------------

def send(client: TestClient, case: Any) -> httpx.Response:
    """The case as schemathesis would send it, through the app's own TestClient (its
    lifespan, its fakes). JSON goes out ASCII-escaped, so a lone surrogate or NaN in a
    generated body reaches the server as the JSON text ``"\\udc80"`` or ``NaN``."""
    kw = case.as_transport_kwargs(base_url=str(client.base_url))
    headers = {k: v for k, v in kw.get("headers", {}).items()
               if k.lower() not in ("content-length", "host", "authorization")}
    content = kw.get("data")
    if "json" in kw:
        content = json.dumps(kw["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    return client.request(kw["method"], kw["url"], params=kw.get("params") or None,
                          headers=headers, content=content)


def run_operation(client: TestClient, op: Any, mode: GenerationMode) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @fuzz_settings(SCHEMATHESIS_EXAMPLES)
    def check(case: Any) -> None:
        resp = send(client, case)
        SCHEMA_TALLY[f"{op.method.upper()} {op.path} {mode.value} {resp.status_code}"] += 1
        assert_served(resp)
        # documented status and content type, body matches its schema, negative data refused
        case.validate_response(resp, excluded_checks=[positive_data_acceptance])

    try:
        check()
    except Unsatisfiable:  # no invalid request exists (an operation without parameters)
        assert mode is GenerationMode.NEGATIVE


def test_schemathesis_every_operation_both_modes(client: TestClient) -> None:
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    ops = [r.ok() for r in schema.get_all_operations()]
    paths = {o.path for o in ops}
    assert {"/v1/answer", "/v1/score", "/v1/feedback", "/v1/chat/completions",
            "/v1/admin/calibration/reload", "/healthz"} <= paths
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(client, op, mode)
    by_op: Counter[str] = Counter()
    for key, n in SCHEMA_TALLY.items():
        by_op[" ".join(key.split()[:2])] += n
    total = sum(SCHEMA_TALLY.values())
    server_errors = sum(n for key, n in SCHEMA_TALLY.items() if key.split()[-1] >= "500")
    print("\nFUZZ_REPORT " + json.dumps({"operations": len(ops), "cases": total,
                                         "server_errors": server_errors, "by_operation": by_op,
                                         "by_status": dict(sorted(SCHEMA_TALLY.items()))}))
    assert total >= MIN_SCHEMATHESIS_CASES and server_errors == 0
    assert set(by_op) == {f"{o.method.upper()} {o.path}" for o in ops}  # every one was sent


# -- hypothesis: arbitrary Unicode in every text field ------------------------------------------

# Every code point, the surrogates (Cs) and NUL included, plus the usual suspects often.
TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.sampled_from(["\udc80", "\ud800", "a\udfffb", "\ud83d", "x\x00y", "\x00", "😀", "",
                     " ", "\ufeff", "\u2028", "e\u0301", "\U0010ffff", "\ud83d\ude00"]),
)

ANSWER = {"question": "doubt: 3+4?", "max_tokens": 8}
SCORE = {"question": "3+4?", "answer": "7", "samples": ["7", "8"], "context": "c"}
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "doubt: 3+4?"}]}]
CHAT = {"model": "m", "messages": MESSAGES, "max_tokens": 8}
GUARDED = {**CHAT, "stream": True}
LIVE = {**CHAT, "stream": True, "stream_mode": "live"}

# (endpoint, a valid body, where the text goes, the `param` a refusal may name). The path
# is a list of keys and indices into the body.
FIELDS: list[tuple[str, dict[str, Any], tuple[str | int, ...], str]] = [
    ("/v1/answer", ANSWER, ("question",), "question"),
    ("/v1/answer", ANSWER, ("context",), "context"),
    ("/v1/answer", ANSWER, ("system",), "system"),
    ("/v1/answer", ANSWER, ("policy", "profile"), "policy.profile"),
    ("/v1/score", SCORE, ("question",), "question"),
    ("/v1/score", SCORE, ("answer",), "answer"),
    ("/v1/score", SCORE, ("samples", 1), "samples.1"),
    ("/v1/score", SCORE, ("context",), "context"),
    ("/v1/score", SCORE, ("profile",), "profile"),
    ("/v1/feedback", {"id": "ans_1", "correct": True}, ("id",), "id"),
    ("/v1/admin/calibration/reload", {}, ("source",), "source"),
] + [
    ("/v1/chat/completions", body, path, param)
    for body in (CHAT, GUARDED, LIVE)
    for path, param in [
        (("messages", 0, "content"), "messages"),
        (("messages", 1, "content", 0, "text"), "messages"),
        (("messages", 1, "name"), "messages.1.name"),
        (("model",), "model"),
        (("context",), "context"),
        (("policy", "profile"), "policy.profile"),
    ]
]


def put(body: dict[str, Any], path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return out


def get(body: Any, path: tuple[str | int, ...]) -> str:
    for key in path:
        body = body[key]
    assert isinstance(body, str)
    return body


def field_id(field: tuple[str, dict[str, Any], tuple[str | int, ...], str]) -> str:
    endpoint, body, path, _ = field
    mode = ("-live" if body.get("stream_mode") == "live" else "-stream") if body.get(
        "stream") else ""
    return f"{endpoint}{mode}:{'.'.join(map(str, path))}"


@pytest.mark.parametrize("field", FIELDS, ids=[field_id(f) for f in FIELDS])
def test_any_unicode_in_any_text_field(client: TestClient, field: Any) -> None:
    endpoint, body, path, param = field
    sent: Counter[str] = Counter()

    @given(text=TEXT)
    @fuzz_settings(TEXT_EXAMPLES)
    def check(text: str) -> None:
        # ASCII-escaped JSON: a lone surrogate travels as "\udc80", as any client sends it
        raw = json.dumps(put(body, path, text))
        resp = client.post(endpoint, content=raw, headers={"content-type": "application/json"})
        assert_served(resp)
        # what the server reads: JSON joins an escaped surrogate *pair* into one character
        problem = text_problem(get(json.loads(raw), path))
        where = ".".join(map(str, path))
        sent["bad" if problem else "good"] += 1
        if problem is not None:  # the engine cannot take it: 422 naming the field
            err = assert_error_shape(resp)
            assert resp.status_code == 422 and err["param"] == where, (text, err)
            assert f"{where}: {problem}" in err["message"], err
        elif resp.status_code >= 400:  # e.g. a blank question, an unknown profile
            err = assert_error_shape(resp)
            assert err["param"] is not None and (
                err["param"] == param or err["param"].startswith(param + ".")), (text, err)

    check()
    assert sent["bad"] and sent["good"], sent  # both kinds of text reached the field


def test_text_fields_cover_every_string_of_every_request_body(client: TestClient) -> None:
    """The table above names every string field of every request body in the schema."""
    spec = client.app.openapi()  # type: ignore[attr-defined]
    comps = spec["components"]["schemas"]

    def strings(schema: dict[str, Any], prefix: str) -> Iterator[str]:
        if "$ref" in schema:
            yield from strings(comps[schema["$ref"].rsplit("/", 1)[-1]], prefix)
            return
        for sub in schema.get("anyOf", []):
            yield from strings(sub, prefix)
        if schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
            yield prefix
        if schema.get("type") == "array":
            yield from strings(schema.get("items", {}), f"{prefix}.*")
        for name, sub in schema.get("properties", {}).items():
            yield from strings(sub, f"{prefix}.{name}" if prefix else name)

    wanted = set()
    for path, ops in spec["paths"].items():
        body = ops.get("post", {}).get("requestBody")
        if body:
            wanted |= {f"{path}:{p}" for p in strings(
                body["content"]["application/json"]["schema"], "")}
    covered = {f"{e}:" + ".".join("*" if isinstance(k, int) else k for k in p)
               for e, _, p, _ in FIELDS}
    assert wanted <= covered, sorted(wanted - covered)
    assert re.search(r"messages\.\*\.content\.\*\.text", " ".join(wanted))
