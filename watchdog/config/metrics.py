"""Schema of the ``metrics`` section: where the Prometheus endpoint listens (off when absent)."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from watchdog.config.base import _Problem, _Strict


class Metrics(_Strict):
    """``metrics: {listen: "127.0.0.1:9464"}`` serves ``/metrics`` and ``/healthz`` there.

    ``listen`` is ``HOST:PORT`` with a literal IP address (``[::1]:9464`` for IPv6); binding
    beyond loopback is the operator's explicit choice.
    """

    listen: str = Field(min_length=1, max_length=64)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` → ``("127.0.0.1", 9464)``; ``"[::1]:9464"`` → ``("::1", 9464)``."""
    fix = 'write HOST:PORT with an IP address, e.g. "127.0.0.1:9464" or "[::1]:9464"'
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise _Problem(f"{value!r} is not HOST:PORT", fix)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise _Problem(f"{host!r} is not an IP address", fix) from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _Problem(f"port {port_text!r} is not between 1 and 65535", fix)
    return host, int(port_text)
