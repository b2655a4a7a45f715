"""Configuration: schema, defaults, validation and secret resolution (pure-logic layer).

Defaults per section, then the user's values, then validation that names the key's path
(``clusters[0].nodes[1].plug.host``) and a fix; unknown keys are rejected with a
did-you-mean, duplicate YAML keys too. Secrets are given only by reference — ``${ENV}``, a
``*_file`` path, or a systemd credential name (``*_credential``, read from
``$CREDENTIALS_DIRECTORY``) — and are held as :class:`pydantic.SecretStr`, so they never
appear in a repr, a dump, a log or an error. config/README.md is the user's reference.

``parse_config`` is pure apart from reading secret files (text, environment and credentials
directory are arguments); ``load_config`` also reads the file and the process environment.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
    ValidationInfo,
    field_validator,
    model_validator,
)

from watchdog.errors import ConfigError

README = "config/README.md"

# --------------------------------------------------------------------------- durations
_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*)+$")
_NUMBER_RE = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """``30s``, ``5m``, ``1h30m``, ``500ms`` or a bare number of seconds -> seconds."""
    if isinstance(value, bool):  # YAML turns `yes`/`on` into booleans: not a duration
        raise _Problem("expected a duration such as 30s, 5m or 1h30m", _DURATION_FIX)
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER_RE.match(value)):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.match(value):
        seconds = sum(float(n) * _UNIT[u] for n, u in _PART_RE.findall(value))
    else:
        raise _Problem(
            f"expected a duration such as 30s, 5m or 1h30m, got {value!r}", _DURATION_FIX
        )
    if not math.isfinite(seconds):
        raise _Problem("expected a finite duration", "write a duration such as 30s")
    if seconds < 0:
        raise _Problem("a duration cannot be negative", "write a positive duration such as 30s")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration` for messages: 90 -> ``1m30s``, 0.5 -> ``500ms``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = "", round(seconds, 3)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out += f"{int(rest // size)}{unit}"
            rest -= size * int(rest // size)
    if rest or not out:
        out += f"{rest:g}s"
    return out


_DURATION_FIX = "units are ms, s, m, h and d (1h30m); a bare number means seconds"

Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Problem(ValueError):
    """A validation failure with its fix; ``key`` names a field below the failing model."""

    def __init__(self, message: str, fix: str = "", key: str = "") -> None:
        self.fix = fix
        self.key = key
        super().__init__(message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _timeout_within_interval(timeout: float, interval: float) -> None:
    # A probe whose deadline outlives its period would overlap the next run of itself.
    if timeout > interval:
        raise _Problem(
            f"longer than interval ({format_duration(timeout)} > {format_duration(interval)})",
            "make timeout at most interval",
            key="timeout",
        )


# --------------------------------------------------------------------------- secrets
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class SecretSource(StrEnum):
    ENV = "env"
    FILE = "file"
    CREDENTIAL = "credential"


@dataclass(frozen=True)
class SecretContext:
    """Where secret references resolve from: passed as pydantic's validation context."""

    env: Mapping[str, str]
    credentials_dir: str | None = None
    base_dir: Path | None = None  # relative *_file paths are relative to the config file


def _default_context() -> SecretContext:
    return SecretContext(os.environ, os.environ.get("CREDENTIALS_DIRECTORY"))


def _resolve_secret(raw: object, key: str, name: str, ctx: SecretContext) -> SecretStr:
    others = f"{name}_file or {name}_credential"
    if isinstance(raw, SecretStr):  # built in code (tests, reload): already resolved
        return raw
    if not isinstance(raw, str) or not raw:
        raise _Problem("expected a non-empty string", _BY_REFERENCE.format(name=name))
    if key == name:
        match = _ENV_REF.match(raw)
        if not match:
            # Never echo `raw`: it is very likely the secret itself.
            raise _Problem("a literal secret is not accepted", _BY_REFERENCE.format(name=name))
        var = match.group(1)
        if var not in ctx.env:
            raise _Problem(
                f"environment variable {var} is not set",
                f"set it in the service's environment (EnvironmentFile=), or use {others}",
            )
        if not ctx.env[var]:
            raise _Problem(f"environment variable {var} is empty", f"give {var} a value")
        return SecretStr(ctx.env[var])
    if key.endswith("_file"):
        path = Path(raw)
        if not path.is_absolute() and ctx.base_dir is not None:
            path = ctx.base_dir / path
        what, fix = "secret file", "check the path and that the service's user may read it"
    else:
        if "/" in raw or raw in {".", ".."}:
            raise _Problem(
                "a credential is a name, not a path",
                f"write the name given to LoadCredential=, or use {name}_file for a path",
            )
        if not ctx.credentials_dir:
            raise _Problem(
                "CREDENTIALS_DIRECTORY is not set (not running under systemd credentials)",
                f"add LoadCredential={raw}:/path/to/file to the unit, or use {name} or {name}_file",
            )
        path = Path(ctx.credentials_dir) / raw
        what, fix = "credential file", f"check LoadCredential={raw}:… in the unit"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _Problem(f"cannot read {what} {path}: {reason}", fix) from None
    if not text:
        raise _Problem(f"{what} {path} is empty", "write the secret into it")
    return SecretStr(text)


_BY_REFERENCE = "write {name}: ${{ENV_VAR}}, or use {name}_file or {name}_credential"


def _secret_fields(*names: str) -> Any:
    """A model validator folding ``X`` / ``X_file`` / ``X_credential`` into ``X``."""

    def fold(cls: type[BaseModel], data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        ctx = info.context if isinstance(info.context, SecretContext) else _default_context()
        data = dict(data)
        for name in names:
            # `api_key:` with nothing after it means "no key", as YAML's null does elsewhere.
            for key in (name, f"{name}_file", f"{name}_credential"):
                if key in data and data[key] is None:
                    del data[key]
            given = [k for k in (name, f"{name}_file", f"{name}_credential") if k in data]
            if len(given) > 1:
                raise _Problem(
                    f"{' and '.join(given)} are both given", "keep only one of them", given[-1]
                )
            if given:
                key = given[0]
                try:
                    data[name] = _resolve_secret(data.pop(key), key, name, ctx)
                except _Problem as exc:
                    raise _Problem(str(exc), exc.fix, key) from None
        return data

    return model_validator(mode="before")(classmethod(fold))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- probes
class ProbeTiming(_Strict):
    enabled: bool = True
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _timeout_fits(self) -> ProbeTiming:
        _timeout_within_interval(self.timeout, self.interval)
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
        value = value.rstrip("/")
        if value.endswith(_API_SUFFIXES):
            raise _Problem(
                "give the server's base URL, not an API path",
                "write e.g. http://spark-1:8000 (the probes add /health and /v1/…)",
            )
        # People paste the OpenAI-style base (…/v1) from their client config: accept it.
        return value.removesuffix("/v1")


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

    @field_validator("outlet")
    @classmethod
    def _outlet(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise _Problem("an outlet index counts from 0", "write 0 for the first outlet")
        if isinstance(value, str) and not value.strip():
            raise _Problem("must not be empty", "write the outlet's index or its alias")
        return value

    @model_validator(mode="after")
    def _check(self) -> Plug:
        if self.type is not PlugType.DRY_RUN and not self.host:
            raise _Problem("a plug needs a host", "set host to the plug's IP address", "host")
        if self.type is PlugType.TAPO and (self.username is None or self.password is None):
            raise _Problem(
                "Tapo plugs need credentials",
                "set username and password (the TP-Link account), by reference",
                "username",
            )
        if self.username is not None and self.password is None:
            raise _Problem(
                "username is given without password",
                "add password, or remove username",
                "password",
            )
        if self.password is not None and self.username is None:
            raise _Problem(
                "password is given without username",
                "add username, or remove password",
                "username",
            )
        return self

    @property
    def effective_encryption(self) -> PlugEncryption:
        if self.encryption is not None:
            return self.encryption
        if self.type is PlugType.TAPO or self.username is not None:
            return PlugEncryption.KLAP
        return PlugEncryption.XOR


# --------------------------------------------------------------------------- nodes
class Ssh(_Strict):
    enabled: bool = True
    port: int = Field(22, ge=1, le=65535)
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _timeout_fits(self) -> Ssh:
        _timeout_within_interval(self.timeout, self.interval)
        return self


class Ping(_Strict):
    enabled: bool = False
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 2.0

    @model_validator(mode="after")
    def _timeout_fits(self) -> Ping:
        _timeout_within_interval(self.timeout, self.interval)
        return self


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class Node(_Strict):
    name: str = Field(pattern=_NAME)
    host: str = Field(min_length=1)
    ssh: Ssh = Ssh()
    ping: Ping = Ping()
    plug: Plug


class Cluster(_Strict):
    name: str = Field(pattern=_NAME)
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
    # Fence-agent style confirmation of each switch: poll the relay until it reads as asked.
    plug_confirm_timeout: PositiveDuration = 20.0
    plug_poll_interval: PositiveDuration = 1.0

    @model_validator(mode="after")
    def _sane(self) -> Policy:
        # The model can only start loading once the node has booted: serve grace ⊇ boot grace.
        if self.serve_timeout < self.boot_timeout:
            raise _Problem(
                f"shorter than boot_timeout ({format_duration(self.serve_timeout)} < "
                f"{format_duration(self.boot_timeout)})",
                "make serve_timeout at least boot_timeout",
                "serve_timeout",
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

_CHANNELS: dict[str, type[BaseModel]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "ntfy": NtfyChannel,
    "pagerduty": PagerDutyChannel,
    "alertmanager": AlertmanagerChannel,
}


class Heartbeat(_Strict):
    url: SecretStr = Field(repr=False)  # healthchecks.io ping URLs embed their secret
    interval: PositiveDuration = 60.0
    timeout: PositiveDuration = 10.0

    _fold = _secret_fields("url")

    @model_validator(mode="after")
    def _timeout_fits(self) -> Heartbeat:
        _timeout_within_interval(self.timeout, self.interval)
        return self


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
    def _unique(self) -> Config:
        clusters: set[str] = set()
        nodes: set[str] = set()
        plugs: dict[tuple[str, int | None, int | str | None], str] = {}
        for ci, cluster in enumerate(self.clusters):
            if cluster.name in clusters:
                raise _Problem(
                    f"duplicate cluster name {cluster.name!r}",
                    "give every cluster a unique name",
                    f"clusters[{ci}].name",
                )
            clusters.add(cluster.name)
            for ni, node in enumerate(cluster.nodes):
                at = f"clusters[{ci}].nodes[{ni}]"
                # Node names are the operator's handle (`cycle NODE`): unique across clusters.
                if node.name in nodes:
                    raise _Problem(
                        f"duplicate node name {node.name!r}",
                        "give every node a unique name",
                        f"{at}.name",
                    )
                nodes.add(node.name)
                # Two nodes on one outlet: cycling one would cut the other too.
                plug = (node.plug.host, node.plug.port, node.plug.outlet)
                if node.plug.type is not PlugType.DRY_RUN and plug in plugs:
                    raise _Problem(
                        f"same plug outlet as node {plugs[plug]!r}",
                        "give each node its own plug, or its own outlet of a strip",
                        f"{at}.plug",
                    )
                plugs[plug] = node.name
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


# --------------------------------------------------------------------------- errors
def _fmt_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(path: str, key: str) -> str:
    if not key:
        return path
    return f"{path}.{key}" if path else key


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """Walk the schema along ``loc`` to the model holding the key at ``loc[-1]``."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        # No such field: a discriminated union's tag in the location, e.g. 'slack'.
        model = _inner_model(field.annotation) if field is not None else _CHANNELS.get(part)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    keys = list(model.model_fields)
    for key, field in model.model_fields.items():
        if "SecretStr" in str(field.annotation):
            keys += [f"{key}_file", f"{key}_credential"]
    return keys


def _is_duration(loc: tuple[int | str, ...]) -> bool:
    model = _model_at(loc)
    field = model.model_fields.get(str(loc[-1])) if model and loc else None
    return field is not None and any(
        getattr(m, "func", None) is parse_duration for m in field.metadata
    )


_TYPE_MESSAGES: dict[str, tuple[str, str]] = {
    "int_parsing": ("expected a whole number", "write a number such as 3"),
    "int_type": ("expected a whole number", "write a number such as 3"),
    "int_from_float": ("expected a whole number", "write a number such as 3"),
    "float_parsing": ("expected a number", "write a number such as 0.95"),
    "float_type": ("expected a number", "write a number such as 0.95"),
    "bool_parsing": ("expected true or false", "write true or false"),
    "bool_type": ("expected true or false", "write true or false"),
    "string_type": ("expected a string", "write text, quoted if in doubt"),
    "list_type": ("expected a list", "write one '- item' per entry"),
    "model_type": ("expected a mapping", "write 'key: value' lines under it"),
    "model_attributes_type": ("expected a mapping", "write 'key: value' lines under it"),
    "dict_type": ("expected a mapping", "write 'key: value' lines under it"),
    "too_short": ("must list at least one entry", "add an entry"),
    "string_too_short": ("must not be empty", "write a value"),
    "string_pattern_mismatch": (
        "must start with a letter or digit and use only letters, digits, '.', '_' and '-' "
        "(at most 63)",
        "rename it, e.g. spark-1",
    ),
}


def _describe(err: Any, loc: tuple[int | str, ...], path: str) -> ConfigError:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    key = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = _allowed_keys(model) if model else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            fix = f"did you mean {close[0]!r}?"
        else:
            fix = f"remove it; allowed here: {', '.join(sorted(allowed))}" if allowed else ""
        return ConfigError(path, "unknown key", fix or "remove it")
    if kind == "missing":
        return ConfigError(path, "required key is missing", f"add {key}; see {README}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        types = ", ".join(_CHANNELS)
        if kind == "union_tag_not_found":
            return ConfigError(
                _join(path, "type"), "required key is missing", f"use one of {types}"
            )
        return ConfigError(
            _join(path, "type"), f"unknown channel type {ctx.get('tag')!r}", f"use one of {types}"
        )
    if kind in ("enum", "literal_error"):
        shown = f" {err['input']!r}" if isinstance(err.get("input"), str) else ""
        return ConfigError(path, f"unknown {key}{shown}", f"use one of {ctx.get('expected')}")
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        if _is_duration(loc):
            return ConfigError(path, "must be longer than 0", "write a duration such as 30s")
        message, fix = {
            "greater_than": (f"must be greater than {bound}", "use a larger value"),
            "greater_than_equal": (f"must be at least {bound}", f"use {bound} or more"),
            "less_than_equal": (f"must be at most {bound}", f"use {bound} or less"),
            "less_than": (f"must be less than {bound}", "use a smaller value"),
        }[kind]
        return ConfigError(path, message, fix)
    if kind in _TYPE_MESSAGES:
        return ConfigError(path, *_TYPE_MESSAGES[kind])
    return ConfigError(path, str(err["msg"]).removeprefix("Value error, "), f"see {README}")


def _translate(exc: ValidationError) -> ConfigError:
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the real key "missing": name the misspelling first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    # The channel list's discriminated union adds the tag after the index: users never wrote it.
    shown = tuple(
        p for i, p in enumerate(loc) if not (i >= 2 and loc[i - 2] == "channels" and p in _CHANNELS)
    )
    path = _fmt_path(shown)
    problem = (err.get("ctx") or {}).get("error")
    if isinstance(problem, _Problem):
        return ConfigError(_join(path, problem.key), str(problem), problem.fix)
    return _describe(err, loc, path)


# --------------------------------------------------------------------------- YAML
class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise _DuplicateKey(
                    problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, _DuplicateKey):
            raise ConfigError(where, problem, "keep only one of them") from None
        raise ConfigError(where, f"YAML syntax error: {problem}", "fix the YAML syntax") from None


# --------------------------------------------------------------------------- entry points
def parse_config(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    credentials_dir: str | None = None,
    source: str = "<config>",
    base_dir: str | Path | None = None,
) -> Config:
    """Validate YAML ``text``; raise :class:`ConfigError` naming the key's path and the fix.

    ``env`` (default: the process environment) resolves ``${VAR}`` secrets,
    ``credentials_dir`` the ``*_credential`` ones and ``base_dir`` relative ``*_file`` paths.
    """
    data = _load_yaml(text, source)
    if data is None:
        raise ConfigError(
            "", f"{source} is empty", "start from config/cluster-watchdog.example.yaml"
        )
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else "a single value"
        raise ConfigError(
            "",
            f"the top level must be a mapping, not {found}",
            "start from config/cluster-watchdog.example.yaml",
        )
    ctx = SecretContext(
        os.environ if env is None else env,
        credentials_dir,
        Path(base_dir) if base_dir is not None else None,
    )
    try:
        return Config.model_validate(data, context=ctx)
    except ValidationError as exc:
        raise _translate(exc) from None


def load_config(path: str | Path) -> Config:
    """Read and validate the file at ``path`` against the process environment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError("", f"cannot read {path}: {reason}", "check the path") from None
    return parse_config(
        text,
        env=os.environ,
        credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"),
        source=str(path),
        base_dir=Path(path).parent,
    )
