"""A LiteLLM proxy callback: when Candor abstains, answer with the fallback model instead.

Loaded by ``examples/litellm_proxy.yaml`` (``litellm_settings.callbacks``). After each
successful call the proxy hands the response to ``async_post_call_success_hook``; when it
carries Candor's abstention (``uncertainty.abstained``, or, from any OpenAI-compatible
server, ``message.refusal``) the hook asks the proxy's router for ``CANDOR_FALLBACK_MODEL``
(default ``escalation``, a model name of the config) with the same messages and returns
that response, Candor's ``uncertainty`` attached so the caller still sees why. With
``CANDOR_REVIEW_QUEUE`` set, each escalated question is appended to that JSONL file too.

The caller then tells the three outcomes apart by the response alone: an answer
(``uncertainty.abstained`` false), an escalation (``candor_fallback`` names the model that
answered), or, where the fallback failed, Candor's own abstention unchanged.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

log = logging.getLogger("candor.litellm")


def abstained(response: Any) -> dict[str, Any] | None:
    """Candor's verdict when the response is an abstention, else None."""
    unc = getattr(response, "uncertainty", None)
    choices = getattr(response, "choices", None) or []
    refusal = getattr(choices[0].message, "refusal", None) if choices else None
    if isinstance(unc, dict) and unc.get("abstained"):
        return unc
    return {"abstained": True, "reason": "refusal"} if refusal else None


class CandorFallback(CustomLogger):
    """Route Candor's abstentions to a fallback model (see the module docstring)."""

    def __init__(self, model: str | None = None, queue: str | None = None) -> None:
        super().__init__()
        self.model = model or os.environ.get("CANDOR_FALLBACK_MODEL", "escalation")
        self.queue = queue or os.environ.get("CANDOR_REVIEW_QUEUE")

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any,
                                           response: Any) -> Any:
        verdict = abstained(response)
        if verdict is None or data.get("model") == self.model:
            return None  # an answer (or the fallback's own reply): unchanged
        if self.queue:
            with open(self.queue, "a", encoding="utf-8") as f:
                f.write(json.dumps({"messages": data.get("messages"), "candor": verdict}) + "\n")
        from litellm.proxy.proxy_server import llm_router  # the proxy's router, loaded by now

        try:
            fallback = await llm_router.acompletion(model=self.model,
                                                    messages=data.get("messages") or [])
        except Exception as exc:  # keep Candor's abstention rather than fail the request
            log.warning("fallback %s failed (%s); returning Candor's abstention", self.model, exc)
            return None
        fallback.uncertainty = verdict
        fallback.candor_fallback = self.model
        return fallback


proxy_handler_instance = CandorFallback()
