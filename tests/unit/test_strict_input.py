"""What the API takes, exactly (``service/api_types.py``): text the engine can hold, strict
integers and booleans, finite numbers, each refusal a 422 naming the field with an exact
message; and the chat endpoint refuses every OpenAI parameter it does not implement the
same way (400 naming it), while what the OpenAI SDK sends keeps working."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

import httpx
import openai
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import AllowInfNan, BaseModel, Strict

from service.api_types import VALID_TEXT, text_problem
from tests.fakes import FakeEngine, Script
from tests.unit.test_api import make_client


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    engine = FakeEngine(scripts={"sure": Script(greedy="Paris", logprob=-0.01)})
    with make_client(engine) as c:
        yield c


def post(client: TestClient, path: str, raw: str) -> httpx.Response:
    """``raw`` is sent as written: JSON's NaN, Infinity and "\\udc80" escapes included."""
    return client.post(path, content=raw.encode(), headers={"content-type": "application/json"})


def refused(resp: httpx.Response, status: int, param: str) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error", err
    assert err["code"] == status
    return str(err["message"])


# -- text -----------------------------------------------------------------------------------

def test_the_issue_repro_is_a_422_naming_the_field(client: TestClient) -> None:
    r = post(client, "/v1/answer", '{"question":"What is 2+2?","system":"\\udc80",'
             '"max_tokens":8,"policy":{"max_stage":0}}')
    assert refused(r, 422, "system") == (
        "system: text must be valid Unicode (a lone surrogate, U+DC80, at position 0)")


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/answer", '{"question":"Q\\ud800?"}', "question"),
    ("/v1/answer", '{"question":"q","context":"\\udfff"}', "context"),
    ("/v1/answer", '{"question":"q","policy":{"profile":"p\\udc80"}}', "policy.profile"),
    ("/v1/score", '{"question":"q","answer":"\\udc80"}', "answer"),
    ("/v1/score", '{"question":"q","answer":"a","samples":["a","\\udc80"]}', "samples.1"),
    ("/v1/score", '{"question":"q","answer":"a","context":"\\udc80"}', "context"),
    ("/v1/feedback", '{"id":"\\udc80","correct":true}', "id"),
    ("/v1/chat/completions", '{"messages":[{"role":"system","content":"\\udc80"},'
     '{"role":"user","content":"q"}]}', "messages.0.content"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":[{"type":"text",'
     '"text":"ok"},{"type":"text","text":"\\udc80"}]}]}', "messages.0.content.1.text"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"q"}],'
     '"context":"\\udc80","stream":true}', "context"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"q"}],"stream":true,'
     '"stream_mode":"live","context":"\\udc80"}', "context"),
])
def test_a_lone_surrogate_anywhere_is_a_422_naming_it(client: TestClient, path: str,
                                                      body: str, param: str) -> None:
    message = refused(post(client, path, body), 422, param)
    assert message.startswith(f"{param}: text must be valid Unicode (a lone surrogate, U+D")


def test_nul_is_refused_with_its_position(client: TestClient) -> None:
    r = post(client, "/v1/answer", '{"question":"a\\u0000b"}')
    assert refused(r, 422, "question") == (
        "question: text must not contain NUL (U+0000 at position 1)")


def test_every_other_code_point_is_text(client: TestClient) -> None:
    # an escaped surrogate pair is the one character it encodes; controls, BOM, noncharacters
    raw = json.dumps({"question": "sure: \ud83d\ude00 \x01\t\ufeff\uffff\U0010ffff?"})
    assert post(client, "/v1/answer", raw).status_code == 200
    assert text_problem("😀 \U0010ffff") is None
    assert text_problem("😀\udc80") == (
        "text must be valid Unicode (a lone surrogate, U+DC80, at position 1)")


def test_a_surrogate_in_a_field_name_is_a_422_not_a_500(client: TestClient) -> None:
    for path in ("/v1/answer", "/v1/chat/completions"):
        r = post(client, path, '{"question":"q","messages":[],"\\udc80":1}')
        assert r.status_code == 422 and "lone surrogate" in r.json()["error"]["message"]


# -- numbers and booleans -------------------------------------------------------------------

@pytest.mark.parametrize(("body", "param", "message"), [
    ('"max_tokens":true', "max_tokens", "must be an integer, not true"),
    ('"max_tokens":"8"', "max_tokens", "must be an integer, not a string"),
    ('"max_tokens":8.5', "max_tokens", "must be an integer, not 8.5"),
    ('"return_samples":"yes"', "return_samples", "must be true or false, not a string"),
    ('"return_logprobs":1', "return_logprobs", "must be true or false, not 1"),
    ('"policy":{"run_all":"yes"}', "policy.run_all", "must be true or false, not a string"),
    ('"policy":{"max_stage":false}', "policy.max_stage", "must be an integer, not false"),
    ('"policy":{"budget_ms":Infinity}', "policy.budget_ms",
     "must be an integer, not Infinity"),
    ('"policy":{"target_risk":NaN}', "policy.target_risk", "must be a finite number, not NaN"),
    ('"policy":{"target_risk":1e400}', "policy.target_risk",
     "must be a finite number, not Infinity"),
    ('"policy":{"target_risk":"0.1"}', "policy.target_risk", "must be a number, not a string"),
    ('"policy":{"answer_threshold":NaN}', "policy.answer_threshold",
     "must be a finite number, not NaN"),
    ('"policy":{"abstain_threshold":-Infinity}', "policy.abstain_threshold",
     "must be a finite number, not -Infinity"),
    ('"policy":{"answer_threshold":true}', "policy.answer_threshold",
     "must be a number, not true"),
])
def test_answer_numbers_and_booleans_are_strict(client: TestClient, body: str, param: str,
                                                message: str) -> None:
    r = post(client, "/v1/answer", '{"question":"q",' + body + "}")
    assert refused(r, 422, param) == f"{param}: {message}"


@pytest.mark.parametrize(("path", "raw", "param", "message"), [
    ("/v1/score", '{"question":"q","answer":"a","token_logprobs":[-0.1,NaN]}',
     "token_logprobs.1", "must be a finite number, not NaN"),
    ("/v1/score", '{"question":"q","answer":"a","token_logprobs":[-1],'
     '"top_logprobs":[[-Infinity]]}', "top_logprobs.0.0", "must be a finite number, not "
     "-Infinity"),
    ("/v1/feedback", '{"id":"x","correct":"true"}', "correct",
     "must be true or false, not a string"),
    ("/v1/feedback", '{"id":"x","correct":0}', "correct", "must be true or false, not 0"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"q"}],"n":true}', "n",
     "must be an integer, not true"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"q"}],"stream":"true"}',
     "stream", "must be true or false, not a string"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"q"}],"temperature":NaN}',
     "temperature", "must be a finite number, not NaN"),
    ("/v1/chat/completions", '{"messages":[{"role":"user","content":"q"}],"max_tokens":"8"}',
     "max_tokens", "must be an integer, not a string"),
])
def test_other_numbers_and_booleans_are_strict(client: TestClient, path: str, raw: str,
                                               param: str, message: str) -> None:
    assert refused(post(client, path, raw), 422, param) == f"{param}: {message}"


def test_an_integer_is_a_number(client: TestClient) -> None:
    r = post(client, "/v1/answer", '{"question":"sure: q","policy":{"answer_threshold":1,'
             '"abstain_threshold":0,"target_risk":0.5}}')
    assert r.status_code == 200, r.text


def test_range_checks_come_after_the_type(client: TestClient) -> None:
    r = post(client, "/v1/answer", '{"question":"q","policy":{"target_risk":1}}')
    assert refused(r, 422, "policy.target_risk") == (
        "policy.target_risk: Input should be less than 1")
    r = post(client, "/v1/answer", '{"question":"   "}')
    assert refused(r, 422, "question") == "question: question must not be blank"


# -- every request field is typed once, in service/api_types.py -------------------------------

def scalars(tp: Any, meta: tuple[Any, ...], where: str,
            seen: set[type]) -> Iterator[tuple[str, Any, tuple[Any, ...]]]:
    """The scalar leaves of a field's type: (field, type, the metadata that applies)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *more = typing.get_args(tp)
        yield from scalars(base, meta + tuple(more), where, seen)
    elif origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                yield from scalars(arg, meta, where, seen)
    elif origin is list:
        yield from scalars(typing.get_args(tp)[0], (), where, seen)
    elif origin is Literal:
        return
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen.add(tp)
            for name, f in tp.model_fields.items():
                yield from scalars(f.annotation, tuple(f.metadata), f"{tp.__name__}.{name}",
                                   seen)
    else:
        yield where, tp, meta


def strict(meta: tuple[Any, ...]) -> bool:
    return any(isinstance(m, Strict) and m.strict for m in meta)


def test_every_request_field_uses_the_api_types(client: TestClient) -> None:
    bodies = [p.field_info.annotation for r in client.app.routes if isinstance(r, APIRoute)
              for p in r.dependant.body_params]
    assert len(bodies) >= 5
    seen: set[type] = set()
    checked = []
    for body in bodies:
        for where, leaf, meta in scalars(body, (), "body", seen):
            checked.append(where)
            if leaf is str:
                assert any(m is VALID_TEXT for m in meta), f"{where}: use api_types.Text"
            elif leaf in (int, bool):
                assert strict(meta), f"{where}: use api_types.Int / Bool"
            elif leaf is float:
                assert strict(meta) and any(isinstance(m, AllowInfNan) and not m.allow_inf_nan
                                            for m in meta), f"{where}: use api_types.Number"
            else:
                raise AssertionError(f"{where}: a {leaf!r} field; type it in api_types.py")
    assert {"AnswerRequest.question", "PolicyIn.target_risk", "ChatMessageIn.content",
            "TextPart.text", "ScoreRequest.samples"} <= set(checked)


# -- the chat endpoint: OpenAI parameters Candor does not implement ---------------------------

def chat(client: TestClient, **extra: Any) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "sure: capital?"}], **extra}
    return post(client, "/v1/chat/completions", json.dumps(body))


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"parallel_tool_calls": True}, "parallel_tool_calls"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"stop": ["\n"]}, "stop"), ({"stop": "x"}, "stop"),
    ({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"seed": 7}, "seed"), ({"user": "u-1"}, "user"), ({"frequency_penalty": 0.5},
                                                      "frequency_penalty"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"), ({"modalities": ["audio"]}, "modalities"),
    ({"stream": True, "stream_options": {"include_obfuscation": True}},
     "stream_options.include_obfuscation"),
    ({"messages": [{"role": "user", "content": "q", "tool_calls": [{"id": "c"}]}]},
     "messages.0.tool_calls"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "q",
                                                 "cache_control": {"type": "x"}}]}]},
     "messages.0.content.0.cache_control"),
    ({"polcy": {"max_stage": 0}}, "polcy"),  # a misspelt option is not silently dropped
])
def test_what_candor_does_not_implement_is_refused_one_way(client: TestClient,
                                                          extra: dict[str, Any],
                                                          param: str) -> None:
    message = refused(chat(client, **extra), 400, param)
    assert message.startswith(f"Candor does not implement the OpenAI parameter {param!r}")
    assert message.endswith("leave it out or send null")


def test_parameters_that_ask_for_nothing_are_accepted(client: TestClient) -> None:
    nothing = {"tools": None, "tool_choice": None, "functions": None, "function_call": None,
               "response_format": None, "stop": None, "logprobs": False, "top_logprobs": None,
               "seed": None, "user": None, "n": 1, "stream": False, "stream_options": None,
               "frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {},
               "temperature": 0.7, "top_p": 1, "max_tokens": None}
    r = chat(client, **nothing)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Paris"
    assert chat(client, stop=[], tools=[], stop_sequences="").status_code == 200
    streamed = chat(client, stream=True, stream_options={"include_usage": True})
    assert streamed.status_code == 200 and '"usage"' in streamed.text


def test_the_openai_sdk_defaults_and_explicit_nones_work(client: TestClient) -> None:
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    msgs: Any = [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "sure: capital?"}]
    out = sdk.chat.completions.create(model="m", messages=msgs)
    assert out.choices[0].message.content == "Paris"
    out = sdk.chat.completions.create(model="m", messages=msgs, tools=None,  # sent as null
                                      temperature=None, stop=None, user=None)
    assert out.choices[0].message.content == "Paris"
    chunks = list(sdk.chat.completions.create(model="m", messages=msgs, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="m", messages=msgs,
                                    response_format={"type": "json_object"})
    assert info.value.body["param"] == "response_format"  # type: ignore[index]
