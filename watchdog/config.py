"""Configuration: schema, defaults, validation and secret resolution (pure-logic layer).

Defaults per section, then the user's values, then validation that names the key's path
(``clusters[0].nodes[1].plug.host``) and a fix; unknown keys are rejected with a
did-you-mean. Secrets are given only by reference — ``${ENV}``, a ``*_file`` path, or a
systemd credential name (``*_credential``, read from ``$CREDENTIALS_DIRECTORY``) — and are
held as :class:`pydantic.SecretStr`, so they never appear in a repr, a log or an error.

``parse_config`` is pure (text, environment and credentials directory are arguments);
``load_config`` only reads the file and the process environment.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from watchdog.errors import ConfigError

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*)+$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """``30s``, ``5m``, ``1h30m``, ``500ms`` or a bare number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m or 6h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.match(value):
        seconds = sum(float(n) * _UNIT[u] for n, u in _PART_RE.findall(value))
    else:
        raise ValueError(f"expected a duration like 30s, 5m or 6h, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# --------------------------------------------------------------------------- secrets
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class SecretSource(StrEnum):
    ENV = "env"
    FILE = "file"
    CREDENTIAL = "credential"


class _SecretContext:
    """Where secret references resolve from; set for the duration of one parse."""

    env: Mapping[str, str] = {}
    credentials_dir: str | None = None


def _resolve_secret(raw: Any, source: SecretSource) -> SecretStr:
    if not isinstance(raw, str) or not raw:
        raise ValueError("expected a non-empty string")
    if source is SecretSource.ENV:
        match = _ENV_REF.match(raw)
        if not match:
            raise ValueError(
                "secrets are given by reference only: write ${ENV_VAR}, or use the *_file or "
                "*_credential form of this key"
            )
        name = match.group(1)
        if name not in _SecretContext.env:
            raise ValueError(f"environment variable {name} is not set")
        return SecretStr(_SecretContext.env[name])
    if source is SecretSource.FILE:
        path = Path(raw)
    else:
        if "/" in raw:
            raise ValueError("a credential is a name, not a path")
        if not _SecretContext.credentials_dir:
            raise ValueError(
                "CREDENTIALS_DIRECTORY is not set: use LoadCredential= in the unit, or the "
                "${ENV} or *_file form"
            )
        path = Path(_SecretContext.credentials_dir) / raw
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"secret file {path} is empty")
    return SecretStr(text)


def _secret_fields(*names: str) -> Any:
    """A model validator folding ``X`` / ``X_file`` / ``X_credential`` into ``X``."""

    def fold(cls: type[BaseModel], data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in names:
            given = [
                (key, src)
                for key, src in (
                    (name, SecretSource.ENV),
                    (f"{name}_file", SecretSource.FILE),
                    (f"{name}_credential", SecretSource.CREDENTIAL),
                )
                if key in data
            ]
            if len(given) > 1:
                raise ValueError(f"give only one of {', '.join(k for k, _ in given)}")
            if given:
                key, src = given[0]
                try:
                    data[name] = _resolve_secret(data.pop(key), src)
                except ValueError as exc:
                    raise _SecretProblem(key, str(exc)) from None
        return data

    return model_validator(mode="before")(classmethod(fold))  # type: ignore[arg-type]


class _SecretProblem(ValueError):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


# --------------------------------------------------------------------------- probes
class ProbeTiming(_Strict):
    enabled: bool = True
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _timeout_fits(self) -> ProbeTiming:
        if self.timeout > self.interval:
            raise ValueError("timeout must not exceed interval")
        return self


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


class Endpoint(_Strict):
    base_url: str
    model: str = Field(min_length=1)
    api_key: SecretStr | None = Field(default=None, repr=False)
    expect_fingerprint: str | None = None
    sampling: Sampling = Sampling()
    health: ProbeTiming = ProbeTiming()
    models: ProbeTiming = Field(default_factory=_models_default)
    tool_call: ProbeTiming = Field(default_factory=_tool_call_default)
    round_trip: bool = True
    max_response_bytes: int = Field(1_048_576, ge=1024)

    _fold = _secret_fields("api_key")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// URL such as http://10.0.0.5:8000")
        value = value.rstrip("/")
        if value.endswith("/v1"):
            value = value[: -len("/v1")]
        return value


# --------------------------------------------------------------------------- plugs
class PlugType(StrEnum):
    KASA = "kasa"  # TP-Link Kasa, legacy XOR protocol on :9999 or KLAP with credentials
    TAPO = "tapo"  # TP-Link Tapo (KLAP/AES), credentials required
    DRY_RUN = "dry_run"  # decides and logs, never switches


class PlugEncryption(StrEnum):
    XOR = "xor"
    KLAP = "klap"
    AES = "aes"


class Plug(_Strict):
    type: PlugType
    host: str = ""
    port: int | None = Field(default=None, ge=1, le=65535)
    outlet: int | str | None = None  # strip outlet: index from 0, or its alias
    encryption: PlugEncryption | None = None
    username: SecretStr | None = Field(default=None, repr=False)
    password: SecretStr | None = Field(default=None, repr=False)
    timeout: PositiveDuration = 5.0
    # Arm the plug's own switch-back-on timer before switching off (crash safety).
    device_timer: bool = True
    validate_interval: PositiveDuration = 300.0

    _fold = _secret_fields("username", "password")

    @model_validator(mode="after")
    def _check(self) -> Plug:
        if self.type is not PlugType.DRY_RUN and not self.host:
            raise _FieldProblem("host", "a plug needs a host", "set plug.host to its IP address")
        if self.type is PlugType.TAPO and (self.username is None or self.password is None):
            raise _FieldProblem(
                "username",
                "Tapo plugs need credentials",
                "set username and password (the TP-Link cloud account), by reference",
            )
        if (self.username is None) != (self.password is None):
            raise _FieldProblem("password", "give both username and password, or neither")
        return self

    @property
    def effective_encryption(self) -> PlugEncryption:
        if self.encryption is not None:
            return self.encryption
        if self.type is PlugType.TAPO or self.username is not None:
            return PlugEncryption.KLAP
        return PlugEncryption.XOR


class _FieldProblem(ValueError):
    """A model-level check that belongs to one field: lets the error name that key."""

    def __init__(self, key: str, message: str, fix: str = "") -> None:
        self.key = key
        self.fix = fix
        super().__init__(message)


# --------------------------------------------------------------------------- nodes
class Ssh(_Strict):
    enabled: bool = True
    port: int = Field(22, ge=1, le=65535)
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0


class Ping(_Strict):
    enabled: bool = False
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 2.0


class Node(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    host: str = Field(min_length=1)
    ssh: Ssh = Ssh()
    ping: Ping = Ping()
    plug: Plug


class Cluster(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    endpoint: Endpoint
    nodes: list[Node] = Field(min_length=1)


# --------------------------------------------------------------------------- policy
class Policy(_Strict):
    """Safety rules of design §3, with the defaults given there."""

    failure_threshold: int = Field(3, ge=1, le=100)
    failure_duration: Duration = 60.0
    confirm_interval: PositiveDuration = 5.0
    startup_timeout: PositiveDuration = 600.0
    boot_timeout: PositiveDuration = 600.0
    serve_timeout: PositiveDuration = 1800.0
    off_time: PositiveDuration = 60.0
    max_cycles: int = Field(3, ge=1, le=20)
    cycle_window: PositiveDuration = 21600.0
    backoff: Duration = 300.0  # wait before cycle n+1: backoff * 2**(n-1)
    max_in_flight: int = Field(1, ge=1, le=16)
    fleet_max_cycles: int = Field(4, ge=1, le=100)
    fleet_window: PositiveDuration = 3600.0
    power_on_if_off: bool = False
    degraded_after: Duration = 0.0  # endpoint failing this long before the degraded alert

    @model_validator(mode="after")
    def _sane(self) -> Policy:
        if self.serve_timeout < self.boot_timeout:
            raise _FieldProblem(
                "serve_timeout", "must be at least boot_timeout", "raise serve_timeout"
            )
        return self


class Witness(_Strict):
    """A reference target (gateway, switch) proving the watchdog's own network works."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # TCP connect; None: ICMP echo
    timeout: PositiveDuration = 2.0


# --------------------------------------------------------------------------- alerts
class _Channel(_Strict):
    name: str | None = None
    timeout: PositiveDuration = 10.0


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: str


class SlackChannel(_Channel):
    type: Literal["slack"]
    url: SecretStr = Field(repr=False)  # the incoming-webhook URL is itself the secret

    _fold = _secret_fields("url")


class NtfyChannel(_Channel):
    type: Literal["ntfy"]
    url: str  # server and topic: https://ntfy.sh/my-topic
    token: SecretStr | None = Field(default=None, repr=False)

    _fold = _secret_fields("token")


class PagerDutyChannel(_Channel):
    type: Literal["pagerduty"]
    routing_key: SecretStr = Field(repr=False)
    url: str = "https://events.pagerduty.com/v2/enqueue"

    _fold = _secret_fields("routing_key")


class AlertmanagerChannel(_Channel):
    type: Literal["alertmanager"]
    url: str  # base URL; alerts are POSTed to {url}/api/v2/alerts


Channel = Annotated[
    WebhookChannel | SlackChannel | NtfyChannel | PagerDutyChannel | AlertmanagerChannel,
    Field(discriminator="type"),
]


class Heartbeat(_Strict):
    url: SecretStr = Field(repr=False)  # healthchecks.io ping URLs embed their secret
    interval: PositiveDuration = 60.0
    timeout: PositiveDuration = 10.0

    _fold = _secret_fields("url")


class Alerts(_Strict):
    channels: list[Channel] = []
    renotify: Duration = 3600.0  # 0: never re-notify
    rate_limit: int = Field(30, ge=1)  # notifications per channel per rate_window
    rate_window: PositiveDuration = 3600.0
    retry_max: int = Field(5, ge=0, le=50)
    retry_backoff: PositiveDuration = 2.0
    heartbeat: Heartbeat | None = None


# --------------------------------------------------------------------------- top level
class Watchdog(_Strict):
    state_dir: str | None = None  # default: $STATE_DIRECTORY, else ./state
    dry_run: bool = False
    interface: str | None = None  # the watchdog's own link; None: any non-loopback up
    witnesses: list[Witness] = []
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Strict):
    watchdog: Watchdog = Watchdog()
    policy: Policy = Policy()
    alerts: Alerts = Alerts()
    clusters: list[Cluster] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for ci, cluster in enumerate(self.clusters):
            for ni, node in enumerate(cluster.nodes):
                if node.name in seen:
                    raise _PathProblem(
                        f"clusters[{ci}].nodes[{ni}].name",
                        f"duplicate node name {node.name!r}",
                        "give every node a unique name",
                    )
                seen.add(node.name)
        names = [c.name for c in self.clusters]
        for ci, name in enumerate(names):
            if names.index(name) != ci:
                raise _PathProblem(
                    f"clusters[{ci}].name", f"duplicate cluster name {name!r}", "rename it"
                )
        return self

    def nodes(self) -> list[tuple[Cluster, Node]]:
        return [(c, n) for c in self.clusters for n in c.nodes]

    def node(self, name: str) -> tuple[Cluster, Node]:
        for cluster, node in self.nodes():
            if node.name == name:
                return cluster, node
        raise KeyError(name)

    def state_path(self, env: Mapping[str, str] | None = None) -> Path:
        env = os.environ if env is None else env
        if self.watchdog.state_dir:
            return Path(self.watchdog.state_dir)
        if env.get("STATE_DIRECTORY"):
            # systemd may pass several, colon-separated; the first is ours.
            return Path(env["STATE_DIRECTORY"].split(":")[0])
        return Path("state")


class _PathProblem(ValueError):
    def __init__(self, path: str, message: str, fix: str = "") -> None:
        self.path = path
        self.fix = fix
        super().__init__(message)


# --------------------------------------------------------------------------- errors
def _fmt_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """Walk the schema along ``loc`` to the model whose key is at fault (for did-you-mean)."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(part)
            model = _inner_model(field.annotation) if field else None
        else:
            # a discriminated union member tag, e.g. 'webhook'
            model = _CHANNELS.get(part)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_CHANNELS: dict[str, type[BaseModel]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "ntfy": NtfyChannel,
    "pagerduty": PagerDutyChannel,
    "alertmanager": AlertmanagerChannel,
}


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args:
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    keys = list(model.model_fields)
    secret = [k for k, f in model.model_fields.items() if f.annotation is not None and
              "SecretStr" in str(f.annotation)]
    keys += [f"{k}_file" for k in secret] + [f"{k}_credential" for k in secret]
    return keys


def _translate(exc: ValidationError) -> ConfigError:
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the real key "missing": name the misspelling first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    # Discriminated unions add the tag to the location; drop it from what users see.
    shown = tuple(p for p in loc if not (isinstance(p, str) and p in _CHANNELS))
    path = _fmt_path(shown)
    kind = err["type"]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _SecretProblem):
        return ConfigError(
            _join(path, ctx_error.key), str(ctx_error), "see config/README.md, 'Secrets'"
        )
    if isinstance(ctx_error, _FieldProblem):
        return ConfigError(_join(path, ctx_error.key), str(ctx_error), ctx_error.fix)
    if isinstance(ctx_error, _PathProblem):
        return ConfigError(ctx_error.path, str(ctx_error), ctx_error.fix)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc)
        allowed = _allowed_keys(model) if model else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        fix = f"did you mean {close[0]!r}?" if close else (
            f"allowed keys: {', '.join(sorted(allowed))}" if allowed else "remove it"
        )
        return ConfigError(path, "unknown key", fix)
    if kind == "missing":
        return ConfigError(path, "required key is missing", "add it (see config/README.md)")
    if kind == "union_tag_invalid":
        return ConfigError(
            _join(path, "type"),
            f"unknown channel type {(err.get('ctx') or {}).get('tag')!r}",
            f"use one of {', '.join(_CHANNELS)}",
        )
    if kind == "union_tag_not_found":
        return ConfigError(_join(path, "type"), "required key is missing",
                           f"use one of {', '.join(_CHANNELS)}")
    if kind == "enum":
        expected = (err.get("ctx") or {}).get("expected", "")
        return ConfigError(path, "invalid value", f"use one of {expected}")
    if kind == "too_short":
        return ConfigError(path, "must list at least one entry", "add at least one entry")
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    return ConfigError(path, message, _fix_for(kind))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fix_for(kind: str) -> str:
    return {
        "int_parsing": "write a whole number",
        "int_type": "write a whole number",
        "float_parsing": "write a number",
        "bool_parsing": "write true or false",
        "string_type": "write a string",
        "list_type": "write a YAML list (- item)",
        "model_type": "write a mapping (key: value)",
        "too_short": "add at least one entry",
        "greater_than": "use a larger value",
        "greater_than_equal": "use a larger value",
        "less_than_equal": "use a smaller value",
        "string_pattern_mismatch": "use letters, digits, '.', '_' or '-'",
    }.get(kind, "see config/README.md")


# --------------------------------------------------------------------------- entry points
def parse_config(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    credentials_dir: str | None = None,
    source: str = "<config>",
) -> Config:
    """Validate YAML ``text``; raise :class:`ConfigError` naming the key's path and the fix."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(where, f"YAML syntax error: {problem}", "fix the YAML syntax") from None
    if data is None:
        raise ConfigError("", f"{source} is empty", "start from config/cluster-watchdog.example.yaml")
    if not isinstance(data, dict):
        raise ConfigError("", "the top level must be a mapping", "start from the example config")
    _SecretContext.env = dict(os.environ if env is None else env)
    _SecretContext.credentials_dir = credentials_dir
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc) from None
    finally:
        _SecretContext.env = {}
        _SecretContext.credentials_dir = None


def load_config(path: str | Path) -> Config:
    """Read and validate the file at ``path`` against the process environment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}", "check the path") from None
    return parse_config(
        text,
        env=os.environ,
        credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"),
        source=str(path),
    )
