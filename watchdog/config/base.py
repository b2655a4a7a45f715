"""The two things every config model builds on: ``_Problem`` and ``_Strict``.

``_Problem`` is a validation failure that carries its fix (and the key it is about), which
``errors.py`` turns into a :class:`~watchdog.core.errors.ConfigError`; ``_Strict`` is the base model
that rejects unknown keys, is frozen and keeps input values (secrets) out of pydantic's errors.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Problem(ValueError):
    """A validation failure with its fix; ``key`` names a field below the failing model."""

    def __init__(self, message: str, fix: str = "", key: str = "") -> None:
        self.fix = fix
        self.key = key
        super().__init__(message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
