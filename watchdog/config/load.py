"""Entry points: ``parse_config`` (YAML text -> ``Config``) and ``load_config`` (a file).

The YAML loader refuses duplicate keys; every failure leaves as a :class:`ConfigError`.
``parse_config`` is pure apart from reading secret files (text, environment and credentials
directory are arguments); ``load_config`` also reads the file and the process environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from watchdog.config.errors import _translate
from watchdog.config.schema import Config
from watchdog.config.secrets import SecretContext
from watchdog.errors import ConfigError


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
