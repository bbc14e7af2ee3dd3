"""Candor's verdict as HTTP response headers, so any HTTP client (a gateway, a proxy's log,
``curl -i``, LangChain's ``include_response_headers``) reads it without parsing the body.

Every ``/v1/answer``, ``/v1/chat/completions`` (JSON and guarded streams) and ``/v1/score``
response carries them; a live stream sends its headers before the cascade has decided,
so it carries only ``Candor-Id`` and its verdict rides on the last chunk (HTTP trailers
reach almost no client). A header is absent where its value would be null: in particular
``Candor-Target-Risk`` is there only when the promise applies to this answer.
"""

from __future__ import annotations

from service.schemas import AnswerResponse, CalibrationRef, ScoreResponse


def _text(value: str) -> str:
    """A header-safe value: printable ASCII, anything else escaped (a profile name is the
    operator's choice)."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                   for c in value)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _promise(cal: CalibrationRef) -> dict[str, str]:
    out = {"Candor-Calibrated": _flag(cal.calibrated)}
    if cal.profile is not None:
        out["Candor-Profile"] = _text(cal.profile)
    if cal.target_risk is not None:
        out["Candor-Target-Risk"] = f"{cal.target_risk:g}"
        if cal.delta is not None:
            out["Candor-Delta"] = f"{cal.delta:g}"
    return out


def answer_headers(resp: AnswerResponse) -> dict[str, str]:
    """The headers of an answered (or abstained) request."""
    out = {
        "Candor-Id": resp.id,
        "Candor-Decision": resp.decision,
        "Candor-Confidence": f"{resp.confidence:.4f}",
        "Candor-Stage": str(resp.stage_reached),
        "Candor-Scope": resp.scope.outcome,
        "Candor-Audit": _flag(resp.audit),
        **_promise(resp.calibration),
    }
    if resp.reason is not None:
        out["Candor-Reason"] = resp.reason
    return out


def score_headers(resp: ScoreResponse) -> dict[str, str]:
    """The headers of ``/v1/score`` (no decision: nothing was generated)."""
    out = {"Candor-Calibrated": _flag(resp.calibrated), "Candor-Scope": resp.scope.outcome}
    if resp.confidence is not None:
        out["Candor-Confidence"] = f"{resp.confidence:.4f}"
    if resp.profile is not None:
        out["Candor-Profile"] = _text(resp.profile)
    return out


def live_headers(rid: str | None) -> dict[str, str]:
    """A live stream's headers: only what is known before the first token."""
    return {"Candor-Id": rid} if rid else {}
