"""Configuration: bad configs paired with their exact messages, defaults, durations, secrets.

The table of bad configs is the contract of ``check-config``: each message names the key's
path and a fix. Nothing here sends traffic anywhere; addresses are loopback or documentation.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from watchdog.config import (
    Config,
    Endpoint,
    NtfyChannel,
    PagerDutyChannel,
    Plug,
    PlugEncryption,
    PlugType,
    SlackChannel,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
)
from watchdog.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "cluster-watchdog.example.yaml"
REFERENCE = ROOT / "config" / "README.md"

# The smallest valid config; every bad case below is a complete document like it.
MINIMAL = """
clusters:
  - name: spark
    endpoint: {base_url: "http://127.0.0.1:8000", model: m}
    nodes:
      - {name: spark-1, host: 127.0.0.1, plug: {type: dry_run}}
"""

SECRET = "zq-SECRET-7f3a9c-do-not-print"
ENDPOINT = '{base_url: "http://127.0.0.1:8000", model: m}'


def parse(
    text: str, env: Mapping[str, str] | None = None, credentials_dir: str | None = None
) -> Config:
    """parse_config with an empty environment unless one is given: tests stay hermetic."""
    return parse_config(text, env={} if env is None else env, credentials_dir=credentials_dir)


def cluster(endpoint: str = ENDPOINT, *nodes: str) -> str:
    """A one-cluster document; ``nodes`` are flow mappings (default: one dry-run node)."""
    items = nodes or ("{name: spark-1, host: 127.0.0.1, plug: {type: dry_run}}",)
    lines = "\n".join(f"      - {n}" for n in items)
    return f"clusters:\n  - name: spark\n    endpoint: {endpoint}\n    nodes:\n{lines}\n"


def node(plug: str = "{type: dry_run}", extra: str = "", name: str = "spark-1") -> str:
    return f"{{name: {name}, host: 127.0.0.1, plug: {plug}{', ' + extra if extra else ''}}}"


# --------------------------------------------------------------------------- the table
BAD: list[tuple[str, str, str]] = [
    (
        "unknown top-level key",
        "polcy: {}\n" + MINIMAL,
        "polcy: unknown key (fix: did you mean 'policy'?)",
    ),
    (
        "unknown top-level key without a close match",
        "colour: red\n" + MINIMAL,
        "colour: unknown key (fix: remove it; allowed here: alerts, clusters, metrics, policy, "
        "watchdog)",
    ),
    (
        "unknown nested key",
        "policy: {off_tme: 90s}\n" + MINIMAL,
        "policy.off_tme: unknown key (fix: did you mean 'off_time'?)",
    ),
    (
        "unknown key in a list item",
        cluster(
            ENDPOINT,
            node("{type: kasa, hots: 127.0.0.1}"),
        ),
        "clusters[0].nodes[0].plug.hots: unknown key (fix: did you mean 'host'?)",
    ),
    (
        "unknown key in an alert channel",
        "alerts:\n  channels:\n    - {type: ntfy, urll: 'http://127.0.0.1:1/t'}\n" + MINIMAL,
        "alerts.channels[0].urll: unknown key (fix: did you mean 'url'?)",
    ),
    (
        "misspelt secret form",
        cluster('{base_url: "http://127.0.0.1:8000", model: m, api_key_fil: /k}'),
        "clusters[0].endpoint.api_key_fil: unknown key (fix: did you mean 'api_key_file'?)",
    ),
    (
        "duplicate YAML key",
        "policy:\n  off_time: 60s\n  off_time: 90s\n" + MINIMAL,
        "line 3, column 3: duplicate key 'off_time' (fix: keep only one of them)",
    ),
    (
        "missing required key",
        cluster('{base_url: "http://127.0.0.1:8000"}'),
        "clusters[0].endpoint.model: required key is missing "
        "(fix: add model; see config/README.md)",
    ),
    (
        "missing clusters",
        "watchdog: {dry_run: true}\n",
        "clusters: required key is missing (fix: add clusters; see config/README.md)",
    ),
    (
        "empty node list",
        "clusters:\n  - name: spark\n    endpoint: {base_url: 'http://127.0.0.1:8000', model: m}"
        "\n    nodes: []\n",
        "clusters[0].nodes: must list at least one entry (fix: add an entry)",
    ),
    (
        "wrong type: word for a number",
        "policy: {failure_threshold: three}\n" + MINIMAL,
        "policy.failure_threshold: expected a whole number (fix: write a number such as 3)",
    ),
    (
        "wrong type: scalar for a section",
        "policy: 5\n" + MINIMAL,
        "policy: expected a mapping (fix: write 'key: value' lines under it)",
    ),
    (
        "wrong type: mapping for a list",
        "alerts: {channels: {type: ntfy}}\n" + MINIMAL,
        "alerts.channels: expected a list (fix: write one '- item' per entry)",
    ),
    (
        "wrong type: not a boolean",
        "watchdog: {dry_run: maybe}\n" + MINIMAL,
        "watchdog.dry_run: expected true or false (fix: write true or false)",
    ),
    (
        "bad duration",
        "policy: {off_time: 5 minutes}\n" + MINIMAL,
        "policy.off_time: expected a duration such as 30s, 5m or 1h30m, got '5 minutes' "
        "(fix: units are ms, s, m, h and d (1h30m); a bare number means seconds)",
    ),
    (
        "negative duration",
        "policy: {off_time: -5}\n" + MINIMAL,
        "policy.off_time: a duration cannot be negative "
        "(fix: write a positive duration such as 30s)",
    ),
    (
        "zero duration",
        "policy: {cycle_window: 0}\n" + MINIMAL,
        "policy.cycle_window: must be longer than 0 (fix: write a duration such as 30s)",
    ),
    (
        "zero count",
        "policy: {failure_threshold: 0}\n" + MINIMAL,
        "policy.failure_threshold: must be at least 1 (fix: use 1 or more)",
    ),
    (
        "port out of range",
        cluster(ENDPOINT, node(extra="ssh: {port: 70000}")),
        "clusters[0].nodes[0].ssh.port: must be at most 65535 (fix: use 65535 or less)",
    ),
    (
        "probe timeout longer than its interval",
        cluster(
            '{base_url: "http://127.0.0.1:8000", model: m, health: {interval: 10s, timeout: 20s}}'
        ),
        "clusters[0].endpoint.health.timeout: longer than interval (20s > 10s) "
        "(fix: make timeout at most interval)",
    ),
    (
        "ssh timeout longer than its interval",
        cluster(
            ENDPOINT,
            node(extra="ssh: {interval: 1s, timeout: 1500ms}"),
        ),
        "clusters[0].nodes[0].ssh.timeout: longer than interval (1.5s > 1s) "
        "(fix: make timeout at most interval)",
    ),
    (
        "serve_timeout shorter than boot_timeout",
        "policy: {boot_timeout: 10m, serve_timeout: 5m}\n" + MINIMAL,
        "policy.serve_timeout: shorter than boot_timeout (5m < 10m) "
        "(fix: make serve_timeout at least boot_timeout)",
    ),
    (
        "literal secret refused",
        cluster(f'{{base_url: "http://127.0.0.1:8000", model: m, api_key: {SECRET}}}'),
        "clusters[0].endpoint.api_key: a literal secret is not accepted "
        "(fix: write api_key: ${ENV_VAR}, or use api_key_file or api_key_credential)",
    ),
    (
        "unset environment variable",
        cluster('{base_url: "http://127.0.0.1:8000", model: m, api_key: "${NOT_SET_ANYWHERE}"}'),
        "clusters[0].endpoint.api_key: environment variable NOT_SET_ANYWHERE is not set "
        "(fix: set it in the service's environment (EnvironmentFile=), "
        "or use api_key_file or api_key_credential)",
    ),
    (
        "empty environment variable",
        cluster('{base_url: "http://127.0.0.1:8000", model: m, api_key: "${EMPTY_KEY}"}'),
        "clusters[0].endpoint.api_key: environment variable EMPTY_KEY is empty "
        "(fix: give EMPTY_KEY a value)",
    ),
    (
        "unreadable secret file",
        cluster('{base_url: "http://127.0.0.1:8000", model: m, api_key_file: {tmp}/missing}'),
        "clusters[0].endpoint.api_key_file: cannot read secret file {tmp}/missing: "
        "No such file or directory "
        "(fix: check the path and that the service's user may read it)",
    ),
    (
        "empty secret file",
        cluster('{base_url: "http://127.0.0.1:8000", model: m, api_key_file: {tmp}/empty}'),
        "clusters[0].endpoint.api_key_file: secret file {tmp}/empty is empty "
        "(fix: write the secret into it)",
    ),
    (
        "credential without CREDENTIALS_DIRECTORY",
        cluster(
            ENDPOINT,
            node(
                "{type: kasa, host: 127.0.0.1, username_credential: kasa-user, "
                "password_credential: kasa-pass}"
            ),
        ),
        "clusters[0].nodes[0].plug.username_credential: CREDENTIALS_DIRECTORY is not set "
        "(not running under systemd credentials) (fix: add "
        "LoadCredential=kasa-user:/path/to/file to the unit, or use username or username_file)",
    ),
    (
        "credential given as a path",
        cluster('{base_url: "http://127.0.0.1:8000", model: m, api_key_credential: /etc/k}'),
        "clusters[0].endpoint.api_key_credential: a credential is a name, not a path "
        "(fix: write the name given to LoadCredential=, or use api_key_file for a path)",
    ),
    (
        "two forms of one secret",
        cluster(
            '{base_url: "http://127.0.0.1:8000", model: m, '
            'api_key: "${VLLM_API_KEY}", api_key_file: /k}'
        ),
        "clusters[0].endpoint.api_key_file: api_key and api_key_file are both given "
        "(fix: keep only one of them)",
    ),
    (
        "required secret left empty",
        "alerts:\n  channels:\n    - type: slack\n      url:\n" + MINIMAL,
        "alerts.channels[0].url: required key is missing (fix: add url; see config/README.md)",
    ),
    (
        "duplicate node names",
        cluster(ENDPOINT, node(), node(name="spark-1")),
        "clusters[0].nodes[1].name: duplicate node name 'spark-1' "
        "(fix: give every node a unique name)",
    ),
    (
        "duplicate cluster names",
        MINIMAL + "  - name: spark\n    endpoint: {base_url: 'http://127.0.0.1:8001', model: m}\n"
        "    nodes: [{name: spark-2, host: 127.0.0.2, plug: {type: dry_run}}]\n",
        "clusters[1].name: duplicate cluster name 'spark' (fix: give every cluster a unique name)",
    ),
    (
        "two nodes on one plug outlet",
        cluster(
            ENDPOINT,
            node("{type: kasa, host: 127.0.0.9, outlet: 0}"),
            node("{type: kasa, host: 127.0.0.9, outlet: 0}", name="spark-2"),
        ),
        "clusters[0].nodes[1].plug: same plug outlet as node 'spark-1' "
        "(fix: give each node its own plug, or its own outlet of a strip)",
    ),
    (
        "unknown plug type",
        cluster(ENDPOINT, node("{type: shelly}")),
        "clusters[0].nodes[0].plug.type: unknown type 'shelly' "
        "(fix: use one of 'kasa', 'tapo' or 'dry_run')",
    ),
    (
        "plug without host",
        cluster(ENDPOINT, node("{type: kasa}")),
        "clusters[0].nodes[0].plug.host: a plug needs a host "
        "(fix: set host to the plug's IP address)",
    ),
    (
        "tapo without credentials",
        cluster(
            ENDPOINT,
            node("{type: tapo, host: 127.0.0.1}"),
        ),
        "clusters[0].nodes[0].plug.username: Tapo plugs need credentials "
        "(fix: set username and password (the TP-Link account), by reference)",
    ),
    (
        "username without password",
        cluster(
            ENDPOINT,
            node('{type: kasa, host: 127.0.0.1, username: "${KASA_USER}"}'),
        ),
        "clusters[0].nodes[0].plug.password: username is given without password "
        "(fix: add password, or remove username)",
    ),
    (
        "unknown channel type",
        "alerts:\n  channels:\n    - {type: email}\n" + MINIMAL,
        "alerts.channels[0].type: unknown channel type 'email' "
        "(fix: use one of webhook, slack, ntfy, pagerduty, alertmanager)",
    ),
    (
        "channel without type",
        "alerts:\n  channels:\n    - {url: 'http://127.0.0.1:1/hook'}\n" + MINIMAL,
        "alerts.channels[0].type: required key is missing "
        "(fix: use one of webhook, slack, ntfy, pagerduty, alertmanager)",
    ),
    (
        "unknown log level",
        "watchdog: {log_level: verbose}\n" + MINIMAL,
        "watchdog.log_level: unknown log_level 'verbose' "
        "(fix: use one of 'debug', 'info', 'warning' or 'error')",
    ),
    (
        "base_url that is not a URL",
        cluster("{base_url: spark-1:8000, model: m}"),
        "clusters[0].endpoint.base_url: expected an http:// or https:// URL "
        "(fix: write e.g. http://spark-1:8000)",
    ),
    (
        "base_url with credentials in it",
        cluster(f'{{base_url: "http://user:{SECRET}@127.0.0.1:8000", model: m}}'),
        "clusters[0].endpoint.base_url: credentials in the URL are not accepted (URLs are "
        "logged) (fix: remove user:password@ and use api_key)",
    ),
    (
        "base_url with an API path",
        cluster('{base_url: "http://127.0.0.1:8000/v1/chat/completions", model: m}'),
        "clusters[0].endpoint.base_url: give the server's base URL, not an API path "
        "(fix: write e.g. http://spark-1:8000 (the probes add /health and /v1/…))",
    ),
    (
        "node name with a space",
        cluster(ENDPOINT, node(name='"spark 1"')),
        "clusters[0].nodes[0].name: must start with a letter or digit and use only letters, "
        "digits, '.', '_' and '-' (at most 63) (fix: rename it, e.g. spark-1)",
    ),
    (
        "YAML syntax error",
        "policy:\n  off_time: 60s\n   max_cycles: 3\n" + MINIMAL,
        "line 3, column 14: YAML syntax error: mapping values are not allowed here "
        "(fix: fix the YAML syntax)",
    ),
    (
        "empty file",
        "\n# nothing but a comment\n",
        "<config> is empty (fix: start from config/cluster-watchdog.example.yaml)",
    ),
    (
        "top-level list",
        "- clusters: []\n",
        "the top level must be a mapping, not a list "
        "(fix: start from config/cluster-watchdog.example.yaml)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_it_rejects_a_bad_config_with_the_exact_message(
    text: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "empty").write_text("\n")
    env = {"VLLM_API_KEY": SECRET, "KASA_USER": SECRET, "EMPTY_KEY": ""}
    with pytest.raises(ConfigError) as caught:
        parse_config(text.replace("{tmp}", str(tmp_path)), env=env)
    assert str(caught.value) == expected.replace("{tmp}", str(tmp_path))
    assert SECRET not in str(caught.value)


def test_every_bad_config_message_carries_a_path_or_position_and_a_fix() -> None:
    for name, text, _ in BAD:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, env={"VLLM_API_KEY": "x", "KASA_USER": "x", "EMPTY_KEY": ""})
        err = caught.value
        assert err.fix, name
        if name not in ("empty file", "top-level list"):
            assert err.path, name
            assert str(err).startswith(f"{err.path}: {err.message}"), name


# --------------------------------------------------------------------------- good configs
def test_the_example_config_validates_with_its_api_key_in_the_environment() -> None:
    config = parse_config(EXAMPLE.read_text(), env={"VLLM_API_KEY": SECRET})
    assert [n.name for _, n in config.nodes()] == ["spark-1", "spark-2"]
    endpoint = config.clusters[0].endpoint
    assert endpoint.model == "nvidia/nemotron-3-super"
    assert endpoint.api_key is not None
    assert endpoint.api_key.get_secret_value() == SECRET
    # The DGX Spark values the example exists to teach.
    assert config.policy.off_time >= 60
    assert config.policy.serve_timeout >= config.policy.boot_timeout >= 600
    assert config.watchdog.dry_run is True
    assert {n.plug.type for _, n in config.nodes()} == {PlugType.KASA}


def test_the_example_uses_only_documentation_addresses_and_hostnames() -> None:
    addresses = re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", EXAMPLE.read_text())
    assert addresses
    # ...and loopback, which is nobody's real host (the metrics endpoint's default place).
    assert all(
        a.startswith(("192.0.2.", "198.51.100.", "203.0.113.")) or a == "127.0.0.1"
        for a in addresses
    )


def test_the_example_validates_with_the_file_and_credential_forms(tmp_path: Path) -> None:
    (tmp_path / "vllm-api-key").write_text(SECRET + "\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "kasa-username").write_text("ops@example.org\n")
    (creds / "kasa-password").write_text(SECRET)
    text = (
        EXAMPLE.read_text()
        .replace("api_key: ${VLLM_API_KEY}", f"api_key_file: {tmp_path}/vllm-api-key")
        .replace("# username_credential:", "username_credential:")
        .replace("# password_credential:", "password_credential:")
    )
    config = parse_config(text, env={}, credentials_dir=str(creds))
    plug = config.clusters[0].nodes[0].plug
    assert plug.password is not None and plug.password.get_secret_value() == SECRET
    assert plug.effective_encryption is PlugEncryption.KLAP
    assert config.clusters[0].endpoint.api_key == SecretStr(SECRET)


def test_it_applies_the_design_defaults_to_a_minimal_config() -> None:
    config = parse(MINIMAL)
    policy = config.policy
    assert (policy.failure_threshold, policy.failure_duration) == (3, 60.0)
    assert (policy.boot_timeout, policy.serve_timeout, policy.startup_timeout) == (600, 1800, 600)
    assert (policy.max_cycles, policy.cycle_window, policy.off_time) == (3, 21600, 60)
    assert (policy.max_in_flight, policy.power_on_if_off) == (1, False)
    endpoint = config.clusters[0].endpoint
    assert (endpoint.health.interval, endpoint.health.timeout) == (30, 10)
    assert (endpoint.models.interval, endpoint.models.timeout) == (60, 10)
    assert (endpoint.tool_call.interval, endpoint.tool_call.timeout) == (300, 120)
    assert (endpoint.sampling.temperature, endpoint.sampling.top_p) == (1.0, 0.95)
    assert endpoint.sampling.max_tokens >= 1024
    assert endpoint.api_key is None and endpoint.round_trip is True
    node = config.clusters[0].nodes[0]
    assert (node.ssh.enabled, node.ssh.port, node.ssh.timeout) == (True, 22, 10)
    assert node.ping.enabled is False
    assert config.watchdog.dry_run is False and config.alerts.channels == []


def test_it_keeps_the_other_defaults_of_a_section_the_user_touched() -> None:
    config = parse("policy: {off_time: 90s}\n" + MINIMAL)
    assert config.policy.off_time == 90
    assert config.policy.max_cycles == 3
    assert config.policy.serve_timeout == 1800


def test_it_parses_every_channel_type() -> None:
    text = (
        "alerts:\n  channels:\n"
        "    - {type: webhook, url: 'http://127.0.0.1:1/hook'}\n"
        "    - {type: slack, url: '${SLACK_URL}'}\n"
        "    - {type: ntfy, url: 'http://127.0.0.1:1/topic', token: '${NTFY_TOKEN}'}\n"
        "    - {type: pagerduty, routing_key: '${PD_KEY}'}\n"
        "    - {type: alertmanager, url: 'http://127.0.0.1:9093', timeout: 3s}\n"
        "  heartbeat: {url: '${HC_URL}', interval: 30s}\n" + MINIMAL
    )
    slack, ping = "https://hooks.slack.invalid/services/T/B/s", "https://hc-ping.invalid/h"
    env = {"SLACK_URL": slack, "NTFY_TOKEN": "n", "PD_KEY": "p", "HC_URL": ping}
    alerts = parse(text, env=env).alerts
    assert [c.type for c in alerts.channels] == [
        "webhook",
        "slack",
        "ntfy",
        "pagerduty",
        "alertmanager",
    ]
    assert isinstance(alerts.channels[1], SlackChannel)
    assert alerts.channels[1].url.get_secret_value() == slack
    assert isinstance(alerts.channels[2], NtfyChannel) and alerts.channels[2].token == SecretStr(
        "n"
    )
    assert isinstance(alerts.channels[3], PagerDutyChannel)
    assert alerts.channels[3].url == "https://events.pagerduty.com/v2/enqueue"
    assert alerts.channels[4].timeout == 3
    assert alerts.heartbeat is not None and alerts.heartbeat.interval == 30


def test_it_finds_nodes_by_name_and_the_state_directory() -> None:
    config = parse(
        cluster(
            ENDPOINT,
            node(),
            node(name="spark-2"),
        )
    )
    cluster_, node_ = config.node("spark-2")
    assert (cluster_.name, node_.name) == ("spark", "spark-2")
    with pytest.raises(KeyError):
        config.node("spark-3")
    assert config.state_path({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}) == Path("/var/lib/a")
    assert config.state_path({}) == Path("state")
    pinned = parse("watchdog: {state_dir: /srv/wd}\n" + MINIMAL)
    assert pinned.state_path({"STATE_DIRECTORY": "/var/lib/a"}) == Path("/srv/wd")


# --------------------------------------------------------------------------- durations
@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("6h", 21600.0),
        ("1d", 86400.0),
        ("1m 30s", 90.0),
        ("1.5h", 5400.0),
        (45, 45.0),
        (2.5, 2.5),
        ("20", 20.0),
        (0, 0.0),
    ],
)
def test_it_parses_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["5 minutes", "", "-5s", "1x", "s", True, None, [30], float("inf")])
def test_it_refuses_what_is_not_a_duration(raw: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def test_durations_in_a_config_become_seconds() -> None:
    config = parse("policy: {off_time: 1m30s, confirm_interval: 500ms, backoff: 0}\n" + MINIMAL)
    assert (config.policy.off_time, config.policy.confirm_interval) == (90, 0.5)
    assert config.policy.backoff == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (10, "10s"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (86400, "1d")],
)
def test_it_formats_durations_for_messages(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


# --------------------------------------------------------------------------- base_url
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
        ("https://llm.example.internal/v1", "https://llm.example.internal"),
        ("https://llm.example.internal/serving/v1", "https://llm.example.internal/serving"),
    ],
)
def test_it_strips_a_trailing_v1_from_base_url(given: str, kept: str) -> None:
    config = parse(cluster(f'{{base_url: "{given}", model: m}}'))
    assert config.clusters[0].endpoint.base_url == kept


# --------------------------------------------------------------------------- secrets
def endpoint_with(secret_key: str) -> str:
    return cluster(f'{{base_url: "http://127.0.0.1:8000", model: m, {secret_key}}}')


def test_it_resolves_a_secret_from_the_environment() -> None:
    config = parse(endpoint_with('api_key: "${VLLM_API_KEY}"'), env={"VLLM_API_KEY": SECRET})
    assert config.clusters[0].endpoint.api_key == SecretStr(SECRET)


def test_an_optional_secret_left_empty_means_none() -> None:
    config = parse(endpoint_with("api_key:"), env={})
    assert config.clusters[0].endpoint.api_key is None


def test_it_resolves_a_secret_from_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(f"{SECRET}\n")
    config = parse(endpoint_with(f"api_key_file: {tmp_path}/key"), env={})
    assert config.clusters[0].endpoint.api_key == SecretStr(SECRET)


def test_it_resolves_a_relative_secret_file_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text(SECRET)
    path = tmp_path / "config.yaml"
    path.write_text(endpoint_with("api_key_file: key"))
    monkeypatch.chdir("/")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert load_config(path).clusters[0].endpoint.api_key == SecretStr(SECRET)


def test_it_resolves_a_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "vllm-api-key").write_text(SECRET)
    config = parse(
        endpoint_with("api_key_credential: vllm-api-key"),
        env={},
        credentials_dir=str(tmp_path),
    )
    assert config.clusters[0].endpoint.api_key == SecretStr(SECRET)


def test_load_config_reads_the_process_environment_and_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kasa-password").write_text(SECRET)
    path = tmp_path / "config.yaml"
    path.write_text(
        cluster(
            '{base_url: "http://127.0.0.1:8000", model: m, api_key: "${WD_TEST_KEY}"}',
            node(
                '{type: kasa, host: 127.0.0.1, username: "${WD_TEST_USER}", '
                "password_credential: kasa-password}"
            ),
        )
    )
    monkeypatch.setenv("WD_TEST_KEY", "k")
    monkeypatch.setenv("WD_TEST_USER", "u")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(path)
    plug = config.clusters[0].nodes[0].plug
    assert config.clusters[0].endpoint.api_key == SecretStr("k")
    assert plug.password == SecretStr(SECRET)


def test_load_config_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value) == (
        f"cannot read {tmp_path}/nope.yaml: No such file or directory (fix: check the path)"
    )


def test_load_config_names_the_file_when_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=re.escape(f"{path} is empty")):
        load_config(path)


def every_secret_config(tmp_path: Path) -> tuple[str, dict[str, str], str]:
    """A config carrying SECRET in every secret field, by all three forms."""
    (tmp_path / "pw").write_text(SECRET + "\n")
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "slack").write_text(f"https://hooks.slack.invalid/services/{SECRET}")
    text = (
        "alerts:\n  channels:\n"
        "    - {type: slack, url_credential: slack}\n"
        "    - {type: ntfy, url: 'http://127.0.0.1:1/t', token: '${S}'}\n"
        "    - {type: pagerduty, routing_key: '${S}'}\n"
        "  heartbeat: {url: '${HC}'}\n"
        + cluster(
            '{base_url: "http://127.0.0.1:8000", model: m, api_key: "${S}"}',
            node(
                f"{{type: tapo, host: 127.0.0.1, username: '${{S}}', password_file: {tmp_path}/pw}}"
            ),
        )
    )
    return text, {"S": SECRET, "HC": f"https://hc-ping.invalid/{SECRET}"}, str(creds)


def test_a_secret_never_appears_in_repr_str_or_dumps(tmp_path: Path) -> None:
    text, env, creds = every_secret_config(tmp_path)
    config = parse_config(text, env=env, credentials_dir=creds)
    assert config.clusters[0].nodes[0].plug.password == SecretStr(SECRET)
    for shown in (
        repr(config),
        str(config),
        config.model_dump_json(),
        str(config.model_dump()),
        repr(config.clusters[0].nodes[0].plug),
        repr(config.alerts),
    ):
        assert SECRET not in shown


def test_a_secret_never_appears_in_an_error_about_another_key(tmp_path: Path) -> None:
    text, env, creds = every_secret_config(tmp_path)
    broken = text.replace("model: m", "model: m, modle: typo")
    with pytest.raises(ConfigError) as caught:
        parse_config(broken, env=env, credentials_dir=creds)
    assert str(caught.value).startswith("clusters[0].endpoint.modle: unknown key")
    shown = "".join(traceback.format_exception(caught.value))
    assert SECRET not in shown
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_literal_secret_is_never_echoed_in_its_error() -> None:
    text = cluster(f'{{base_url: "http://127.0.0.1:8000", model: m, api_key: "{SECRET}"}}')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_models_built_in_code_accept_an_already_resolved_secret() -> None:
    endpoint = Endpoint(base_url="http://127.0.0.1:8000/v1", model="m", api_key=SecretStr(SECRET))
    assert endpoint.base_url == "http://127.0.0.1:8000"
    assert endpoint.api_key == SecretStr(SECRET)
    plug = Plug(
        type=PlugType.KASA, host="127.0.0.1", username=SecretStr("u"), password=SecretStr("p")
    )
    assert plug.effective_encryption is PlugEncryption.KLAP
    assert Plug(type=PlugType.KASA, host="127.0.0.1").effective_encryption is PlugEncryption.XOR


def test_a_config_is_frozen() -> None:
    config = parse(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        config.policy.off_time = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- the reference
def test_the_field_reference_documents_every_key() -> None:
    reference = REFERENCE.read_text()
    from pydantic import BaseModel

    import watchdog.config as schema

    models = [
        obj
        for obj in vars(schema).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__.startswith(f"{schema.__name__}.")  # defined in the package
    ]
    missing = sorted(
        f"{model.__name__}.{key}"
        for model in models
        for key in model.model_fields
        if f"`{key}`" not in reference
    )
    assert missing == []
