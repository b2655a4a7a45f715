"""Translation of pydantic's validation errors into one :class:`ConfigError` with a fix.

The message names the key's path as the user wrote it (``clusters[0].nodes[1].plug.host``),
suggests the closest allowed key for a misspelt one, and points at the field reference.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from watchdog.config.alerts import _CHANNELS
from watchdog.config.base import _Problem
from watchdog.config.durations import parse_duration
from watchdog.config.schema import Config
from watchdog.core.errors import ConfigError

README = "config/README.md"


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
