"""Secret references: ``${ENV}``, ``*_file`` and ``*_credential`` resolved into ``SecretStr``.

A literal secret in the config is refused (and never echoed). ``_secret_fields`` is the model
validator that folds ``X`` / ``X_file`` / ``X_credential`` into ``X``; it reads secret files
and the systemd credentials directory, the only I/O of this layer besides the config file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationInfo, model_validator

from watchdog.config.base import _Problem
from watchdog.edge.bounded import FileRefused, read_regular_file

MAX_SECRET_BYTES = 64 * 1024  # a secret file holds one key, token or URL
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
    # A bare word under *_file may be the secret itself pasted in the wrong key: never echo
    # it. A value with a slash is clearly a path and is shown.
    shown = str(path) if "/" in raw else f"named in {key} (value not shown)"
    try:
        text = read_regular_file(path, MAX_SECRET_BYTES).decode("utf-8").strip()
    except FileNotFoundError:
        raise _Problem(f"cannot read {what} {shown}: No such file or directory", fix) from None
    except FileRefused as exc:
        reason = str(exc).replace(str(path), shown)
        raise _Problem(f"{what}: {reason}", fix) from None
    except UnicodeDecodeError:
        raise _Problem(f"cannot read {what} {shown}: not UTF-8 text", fix) from None
    if not text:
        raise _Problem(f"{what} {shown} is empty", "write the secret into it")
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
