"""Does ``candor-client`` still match the server? Its models against an OpenAPI schema.

Each client model is paired with the server schema it parses; both sides are reduced to
``{field: type}`` (types as sets such as ``{"string", "null"}``, ``array[Sample]``,
``object[number]``, enums as their values), and every difference is one line. One
leniency: a client field may add ``null`` to the server's type when it defaults to
``None`` (the client reads a field an older server did not send, or one the server sends
only in some cases, as ``None``). Every schema a paired one refers to must be paired too,
so a nested model the server adds cannot go unchecked. Used by the unit test (the app's
generated schema) and the integration test (the live server's ``/openapi.json``).
"""

from __future__ import annotations

from typing import Any

from candor_client import models
from pydantic import BaseModel

# client model -> the server's OpenAPI component it mirrors
PAIRS: dict[type[BaseModel], str] = {
    models.Answer: "AnswerResponse",
    models.Score: "ScoreResponse",
    models.FeedbackResult: "FeedbackResponse",
    models.Signals: "Signals",
    models.StageReport: "StageReport",
    models.Sample: "Sample",
    models.TokenLogprob: "TokenLogprob",
    models.CalibrationRef: "CalibrationRef",
    models.ScopeReport: "ScopeReport",
    models.Usage: "Usage",
    models.Claims: "ClaimsReport",
    models.Claim: "Claim",
    models.ClaimSignals: "ClaimSignals",
    models.Policy: "PolicyIn",
    models.Calibration: "CalibrationResponse",
    models.CalibrationProfile: "CalibrationProfile",
    models.CalibrationScope: "CalibrationScope",
    models.CalibrationClaims: "CalibrationClaims",
    models.CalibrationMap: "CalibrationMap",
    models.ServingSettings: "ServingSettings",
    models.ThresholdEntry: "ThresholdEntry",
    models.PromiseStatus: "PromiseStatus",
    models.PromiseReport: "PromiseReport",
    models.AbstentionReport: "AbstentionReport",
    models.DriftReport: "DriftReport",
    models.DriftBins: "DriftBins",
    models.DriftWindow: "DriftWindow",
    models.MonitorFreshness: "MonitorFreshness",
    models.ReloadResult: "ReloadResponse",
}


def _type(schema: dict[str, Any], rename: dict[str, str]) -> frozenset[str]:
    """A property's type as a set of names; ``$ref``s named by the server's component."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return frozenset({rename.get(name, name)})
    if "anyOf" in schema:
        return frozenset().union(*(_type(s, rename) for s in schema["anyOf"]))
    if "const" in schema:
        return frozenset({f"enum{sorted([schema['const']])}"})
    if "enum" in schema:
        return frozenset({f"enum{sorted(schema['enum'])}"})
    if schema.get("type") == "array":
        items = sorted(_type(schema.get("items", {}), rename))
        return frozenset({f"array[{'|'.join(items)}]"})
    if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
        values = sorted(_type(schema["additionalProperties"], rename))
        return frozenset({f"object[{'|'.join(values)}]"})
    if "type" in schema:
        return frozenset({schema["type"]})
    return frozenset({"any"})


def fields(schema: dict[str, Any], rename: dict[str, str]) -> dict[str, frozenset[str]]:
    return {k: _type(v, rename) for k, v in schema.get("properties", {}).items()}


def refs(schema: Any) -> set[str]:
    """The components a schema refers to, at any depth."""
    if isinstance(schema, dict):
        own = {schema["$ref"].rsplit("/", 1)[-1]} if isinstance(schema.get("$ref"), str) else set()
        return own.union(*(refs(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(refs(v) for v in schema))
    return set()


def _may_be_none(cls: type[BaseModel], name: str) -> bool:
    field = cls.model_fields.get(name)
    return field is not None and not field.is_required() and field.get_default() is None


def drift(openapi: dict[str, Any]) -> list[str]:
    """Every field the client lacks, has in excess, or types differently from the server,
    and every server schema a paired one uses that no client model mirrors."""
    components = openapi["components"]["schemas"]
    names = {cls.__name__: server for cls, server in PAIRS.items()}
    out = []
    for cls, server_name in PAIRS.items():
        if server_name not in components:
            out.append(f"{cls.__name__}: the server has no schema {server_name}")
            continue
        for used in sorted(refs(components[server_name]) - set(PAIRS.values())):
            out.append(f"{cls.__name__}: the server's {server_name} uses {used}, which no "
                       "client model mirrors (add it to PAIRS)")
        client_schema = cls.model_json_schema(ref_template="#/$defs/{model}")
        want = fields(components[server_name], {})
        have = fields(client_schema, names)
        for name in sorted(want.keys() - have.keys()):
            out.append(f"{cls.__name__}.{name}: missing in the client "
                       f"(server: {sorted(want[name])})")
        for name in sorted(have.keys() - want.keys()):
            out.append(f"{cls.__name__}.{name}: not in the server's {server_name}")
        for name in sorted(want.keys() & have.keys()):
            lenient = have[name] == want[name] | {"null"} and _may_be_none(cls, name)
            if want[name] != have[name] and not lenient:
                out.append(f"{cls.__name__}.{name}: client {sorted(have[name])}, "
                           f"server {sorted(want[name])}")
    return out
