"""Schema of a cluster's vLLM endpoint: its URL, model, API key, sampling and probe timings."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator

from watchdog.config.base import _Problem, _Strict
from watchdog.config.durations import PositiveDuration, _timeout_within_interval
from watchdog.config.secrets import _secret_fields
from watchdog.config.urls import check_http_url


class ProbeTiming(_Strict):
    enabled: bool = True
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _timeout_fits(self) -> ProbeTiming:
        _timeout_within_interval(self.timeout, self.interval)
        return self


class ProgressProbe(ProbeTiming):
    """The engine-progress probe (``GET /metrics``): stalled after ``stall_after`` still."""

    stall_after: PositiveDuration = 120.0


class Sampling(_Strict):
    """The model card's sampling (Nemotron: temperature 1.0, top_p 0.95)."""

    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    # Reasoning models spend ~160 tokens before a one-argument call; 1024+ avoids `length`.
    max_tokens: int = Field(1024, ge=16, le=65536)


def _tool_call_default() -> ProbeTiming:
    return ProbeTiming(interval=300.0, timeout=120.0)


def _models_default() -> ProbeTiming:
    return ProbeTiming(interval=60.0, timeout=10.0)


_API_SUFFIXES = ("/chat/completions", "/completions", "/models")


class Endpoint(_Strict):
    base_url: str
    model: str = Field(min_length=1)
    api_key: SecretStr | None = Field(default=None, repr=False)
    expect_fingerprint: str | None = None
    sampling: Sampling = Sampling()
    health: ProbeTiming = ProbeTiming()
    models: ProbeTiming = Field(default_factory=_models_default)
    tool_call: ProbeTiming = Field(default_factory=_tool_call_default)
    progress: ProgressProbe = ProgressProbe()
    round_trip: bool = True
    max_response_bytes: int = Field(1_048_576, ge=1024)

    _fold = _secret_fields("api_key")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        match = re.match(r"^https?://([^/\s]+)", value)
        if not match:
            raise _Problem("expected an http:// or https:// URL", "write e.g. http://spark-1:8000")
        if "@" in match.group(1):  # the URL is logged; credentials in it would be too
            raise _Problem(
                "credentials in the URL are not accepted (URLs are logged)",
                "remove user:password@ and use api_key",
            )
        check_http_url(value)
        value = value.rstrip("/")
        if value.endswith(_API_SUFFIXES):
            raise _Problem(
                "give the server's base URL, not an API path",
                "write e.g. http://spark-1:8000 (the probes add /health and /v1/…)",
            )
        # People paste the OpenAI-style base (…/v1) from their client config: accept it.
        return value.removesuffix("/v1")
