"""Schema of a cluster and its nodes: each node's host, sshd/ping probes and smart plug."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, field_validator, model_validator

from watchdog.config.base import _Problem, _Strict
from watchdog.config.durations import PositiveDuration, _timeout_within_interval
from watchdog.config.endpoint import Endpoint
from watchdog.config.secrets import _secret_fields


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
