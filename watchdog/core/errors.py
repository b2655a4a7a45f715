"""Typed errors of cluster-watchdog (vocabulary layer, stdlib only).

Adapters catch foreign exceptions at their edge and re-raise one of these ``from exc``;
nothing above the adapter layer ever sees an httpx, kasa or OS exception. Messages never
carry secret values.
"""

from __future__ import annotations

from enum import StrEnum


class WatchdogError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(WatchdogError):
    """A configuration file is unusable: names the key's path and the fix."""

    def __init__(self, path: str, message: str, fix: str = "") -> None:
        self.path = path
        self.message = message
        self.fix = fix
        text = f"{path}: {message}" if path else message
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


class PlugFailure(StrEnum):
    """Why a plug could not be read or switched."""

    UNREACHABLE = "unreachable"  # refused, no route, DNS
    TIMEOUT = "timeout"  # connected or tried, no answer in time
    AUTH = "auth"  # credentials missing or rejected (KLAP/Tapo)
    PROTOCOL = "protocol"  # answered, but not what a plug answers
    NO_OUTLET = "no_outlet"  # the configured strip outlet does not exist
    NOT_CONFIRMED = "not_confirmed"  # switched, but the state never read back as asked


class PlugError(WatchdogError):
    """A plug operation failed; ``kind`` says how."""

    def __init__(self, kind: PlugFailure, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class StoreError(WatchdogError):
    """Persisted state could not be read or written."""


class ControlError(WatchdogError):
    """An operator request (pause, resume, clear, cycle) was refused."""
