"""Configuration: schema, defaults, validation and secret resolution (pure-logic layer).

Defaults per section, then the user's values, then validation that names the key's path
(``clusters[0].nodes[1].plug.host``) and a fix; unknown keys are rejected with a
did-you-mean, duplicate YAML keys too. Secrets are given only by reference — ``${ENV}``, a
``*_file`` path, or a systemd credential name (``*_credential``, read from
``$CREDENTIALS_DIRECTORY``) — and are held as :class:`pydantic.SecretStr`, so they never
appear in a repr, a dump, a log or an error. config/README.md is the user's reference.

This package owns only the public face; the parts live in its modules: ``durations``,
``secrets``, the schema (``endpoint``, ``nodes``, ``alerts``, ``schema``), ``errors`` (the
translation of validation errors) and ``load`` (``parse_config``/``load_config``).
"""

from __future__ import annotations

from watchdog.config.alerts import (
    AlertmanagerChannel,
    Alerts,
    Channel,
    Heartbeat,
    NtfyChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
)
from watchdog.config.durations import Duration, PositiveDuration, format_duration, parse_duration
from watchdog.config.endpoint import Endpoint, ProbeTiming, ProgressProbe, Sampling
from watchdog.config.errors import README
from watchdog.config.load import load_config, parse_config
from watchdog.config.metrics import Metrics
from watchdog.config.nodes import Cluster, Node, Ping, Plug, PlugEncryption, PlugType, Ssh
from watchdog.config.schema import Config, Policy, Watchdog, Witness
from watchdog.config.secrets import SecretContext, SecretSource

__all__ = [
    "README",
    "AlertmanagerChannel",
    "Alerts",
    "Channel",
    "Cluster",
    "Config",
    "Duration",
    "Endpoint",
    "Heartbeat",
    "Metrics",
    "Node",
    "NtfyChannel",
    "PagerDutyChannel",
    "Ping",
    "Plug",
    "PlugEncryption",
    "PlugType",
    "Policy",
    "PositiveDuration",
    "ProbeTiming",
    "ProgressProbe",
    "Sampling",
    "SecretContext",
    "SecretSource",
    "SlackChannel",
    "Ssh",
    "Watchdog",
    "WebhookChannel",
    "Witness",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]
