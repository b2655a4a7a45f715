"""Entry points: ``parse_config`` (YAML text -> ``Config``) and ``load_config`` (a file).

The YAML loader refuses duplicate keys; every failure leaves as a :class:`ConfigError`.
``parse_config`` is pure apart from reading secret files (text, environment and credentials
directory are arguments); ``load_config`` also reads the file and the process environment.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from watchdog.config.errors import _translate
from watchdog.config.schema import Config
from watchdog.config.secrets import SecretContext
from watchdog.core.errors import ConfigError
from watchdog.edge import redact
from watchdog.edge.bounded import FileRefused, read_regular_file


# --------------------------------------------------------------------------- YAML
class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _OutOfRange(yaml.MarkedYAMLError):
    pass


# Bounds on the config and secret files, and on the YAML inside.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 32  # nested mappings/lists; the schema needs about 6
MAX_INT = 2**53


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (PyYAML silently keeps the last one), integers
    beyond ``MAX_INT`` and non-finite floats (``.inf``, ``1e400``): no config value needs
    them, and they overflow later in float or timedelta arithmetic."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(ch.isdigit() for ch in str(node.value))
        value = super().construct_yaml_int(node) if digits <= 20 else None
        if value is None or abs(value) > MAX_INT:
            raise _OutOfRange(
                problem=f"integer out of range (at most {MAX_INT})", problem_mark=node.start_mark
            )
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _OutOfRange(problem="number is not finite", problem_mark=node.start_mark)
        return value

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


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before anything recursive sees the document.

    The event stream is produced without recursion, so a 100 000-deep document costs only
    its own length here. A syntax error ends the scan: the loader proper reports it, in its
    own words, before it could recurse past the point scanned.
    """
    depth = 0
    for event in _events(text):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _OutOfRange(
                    problem=f"nested more than {MAX_DEPTH} levels deep",
                    problem_mark=event.start_mark,  # type: ignore[arg-type]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _events(text: str) -> Iterator[yaml.Event]:
    """The document's parse events (libyaml when present), ending quietly at a syntax error."""
    with contextlib.suppress(yaml.YAMLError):
        yield from yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _load_yaml(text: str, source: str) -> object:
    try:
        _check_depth(text)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (RecursionError, ValueError, OverflowError, MemoryError):
        raise ConfigError(
            source, "the YAML cannot be read (too deep or a value out of range)", "simplify it"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, _DuplicateKey):
            raise ConfigError(where, problem, "keep only one of them") from None
        if isinstance(exc, _OutOfRange):
            raise ConfigError(where, problem, "write a smaller value or flatten the YAML") from None
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
    except (RecursionError, OverflowError) as exc:  # a bound above was missed: still no trace
        raise ConfigError(
            source, f"a value is out of range ({type(exc).__name__})", "write a smaller value"
        ) from None


def load_config(path: str | Path) -> Config:
    """Read and validate the file at ``path`` against the process environment."""
    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        reason = "No such file or directory"
        raise ConfigError("", f"cannot read {path}: {reason}", "check the path") from None
    except FileRefused as exc:
        raise ConfigError(
            "",
            str(exc),
            f"point at the config file (a regular file under {MAX_CONFIG_BYTES} bytes)",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("", f"cannot read {path}: not UTF-8 text", "check the path") from None
    config = parse_config(
        text,
        env=os.environ,
        credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"),
        source=str(path),
        base_dir=Path(path).parent,
    )
    redact.register_config(config)  # from here on no log line or output shows a secret
    return config
