"""Property-based tests (Hypothesis) of the three readers of untrusted input.

* The config loader: any text, and any hostile value at any key of a valid config, ends in a
  ``Config`` or a :class:`ConfigError` — and a config it accepts is one the scheduler and
  httpx can run (every interval schedules, every URL builds a request).
* The response classifiers: any body and any JSON value end in a result or a classified
  :class:`Fault`, never another exception, and every text they return is printable.
* The state loader: any file content loads or is set aside with a reason, never raises; what
  loads can be saved, and a saved state loads back equal.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from watchdog.config import Config, parse_config
from watchdog.core.errors import ConfigError
from watchdog.core.model import FailureKind
from watchdog.engine.periodic import Periodic, next_count
from watchdog.probes._faults import Fault, Reply, status_fault
from watchdog.probes.http import served_ids
from watchdog.probes.toolcall import classify_round_trip, classify_tool_call
from watchdog.state.store import (
    STATE_FILE,
    CycleIntent,
    IntentStep,
    NodeRecord,
    PersistedState,
    Store,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- values
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "999999999d",
            "1e308",
            "0",
            "-1s",
            "30s",
            "1h30m",
            ".inf",
            ".nan",
            "0.0000001ms",
            "http://h:99999",
            "http://[::1",
            "https://ok.example:443/x",
            "ftp://x",
            "${NOPE}",
        ]
    ),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

VALID: dict[str, Any] = {
    "watchdog": {"log_level": "info"},
    "policy": {"off_time": "60s", "max_cycles": 3},
    "clusters": [
        {
            "name": "c",
            "endpoint": {
                "base_url": "http://127.0.0.1:8000",
                "model": "m",
                "health": {"interval": "30s", "timeout": "5s"},
                "max_response_bytes": 1048576,
            },
            "nodes": [
                {
                    "name": "n1",
                    "host": "127.0.0.1",
                    "ssh": {"port": 22, "interval": "30s", "timeout": "5s"},
                    "plug": {"type": "dry_run"},
                }
            ],
        }
    ],
    "alerts": {
        "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/hook", "timeout": "5s"}],
        "renotify": "4h",
    },
}
PATHS: list[tuple[Any, ...]] = [
    ("policy", "off_time"),
    ("policy", "max_cycles"),
    ("policy", "cycle_window"),
    ("policy", "confirm_interval"),
    ("clusters", 0, "endpoint", "base_url"),
    ("clusters", 0, "endpoint", "max_response_bytes"),
    ("clusters", 0, "endpoint", "health", "interval"),
    ("clusters", 0, "endpoint", "health", "timeout"),
    ("clusters", 0, "endpoint", "health"),
    ("clusters", 0, "nodes", 0, "ssh", "port"),
    ("clusters", 0, "nodes", 0, "ssh", "interval"),
    ("clusters", 0, "nodes", 0, "host"),
    ("clusters", 0, "nodes", 0, "plug"),
    ("alerts", "channels", 0, "url"),
    ("alerts", "channels", 0, "timeout"),
    ("alerts", "renotify"),
    ("watchdog", "log_level"),
]


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


async def _never_run() -> None:
    raise AssertionError("never fired: the timers are not started")


def _runnable(cfg: Config) -> None:
    """What ``run`` does with the values first: schedule every interval, build every URL."""
    intervals = [cfg.policy.confirm_interval]
    for cluster in cfg.clusters:
        ep = cluster.endpoint
        intervals += [ep.health.interval, ep.models.interval, ep.tool_call.interval]
        httpx.Request("GET", ep.base_url + "/v1/models")
        for node in cluster.nodes:
            intervals += [node.ssh.interval, node.plug.validate_interval]
    timers = Periodic()
    for seconds in intervals:
        job = timers.add("job", seconds, _never_run, first=0.0)
        assert math.isfinite(job.next_at)
        assert next_count(0.0, seconds, 1e9, 1) * seconds > 1e9
    for channel in cfg.alerts.channels:
        url = getattr(channel, "url", None)
        if isinstance(url, str):
            httpx.Request("POST", url)


@SETTINGS
@given(st.sampled_from(PATHS), hostile_values)
def test_any_value_at_any_key_is_a_config_or_a_config_error_and_accepted_means_runnable(
    path: tuple[Any, ...], value: Any
) -> None:
    try:
        text = yaml.safe_dump(_with(path, value))
    except (yaml.YAMLError, OverflowError, ValueError):
        assume(False)
        return
    try:
        cfg = parse_config(text, env={})
    except ConfigError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    _runnable(cfg)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text, env={})


@SETTINGS
@given(st.integers(min_value=1, max_value=300), st.sampled_from(["[", "{a: ", "- "]))
def test_any_nesting_depth_is_a_config_or_a_config_error(depth: int, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    sep = "\n" + " " if opener == "- " else ""
    body = "".join(f"{' ' * i if sep else ''}{opener}{sep if sep else ''}" for i in range(depth))
    text = "x: " + body + "1" + closer * depth
    with contextlib.suppress(ConfigError):
        parse_config(text, env={})


# --------------------------------------------------------------------------- classifiers
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
chat_like = st.fixed_dictionaries(
    {
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "finish_reason": json_values,
                    "message": json_values
                    | st.fixed_dictionaries(
                        {
                            "content": json_values,
                            "tool_calls": json_values,
                            "reasoning": json_values,
                        }
                    ),
                }
            ),
            max_size=2,
        )
    },
    optional={"usage": json_values, "system_fingerprint": json_values},
)


def _printable(text: str) -> bool:
    text.encode("utf-8")  # no lone surrogate
    return not any(ord(ch) < 32 for ch in text)


@SETTINGS
@given(json_values | chat_like)
def test_any_json_value_is_classified_never_a_crash(payload: Any) -> None:
    for classify in (classify_tool_call, classify_round_trip, served_ids):
        try:
            classify(payload)
        except Fault as fault:
            assert fault.kind is not FailureKind.PROBE_ERROR, fault.detail


@SETTINGS
@given(
    st.integers(min_value=100, max_value=599), st.binary(max_size=400) | st.text().map(str.encode)
)
def test_any_body_is_json_or_a_bad_response_and_its_error_text_is_printable(
    status: int, body: bytes
) -> None:
    reply = Reply(status, body)
    try:
        reply.json()
    except Fault as fault:
        assert fault.kind is FailureKind.BAD_RESPONSE
        assert _printable(fault.detail)
    assert _printable(reply.error_text())
    if status != 200:
        assert _printable(status_fault(reply, "/x").detail)


@SETTINGS
@given(st.text(alphabet=st.characters(), max_size=60))
def test_a_json_error_message_with_any_characters_comes_out_printable(message: str) -> None:
    body = json.dumps({"error": {"message": message}}).encode()
    assert _printable(status_fault(Reply(500, body), "/x").detail)


# --------------------------------------------------------------------------- state loader
finite = st.floats(min_value=0, max_value=4e9, allow_nan=False)
records = st.builds(
    NodeRecord,
    node_class=st.sampled_from(["unknown", "healthy", "wedged", "given_up"]),
    since=finite,
    consecutive_failures=st.integers(0, 1000),
    failing_since=st.none() | finite,
    seen_healthy=st.booleans(),
    cycles=st.lists(finite, max_size=3).map(tuple),
    latched=st.booleans(),
    latched_reason=st.text(max_size=20),
    paused=st.booleans(),
    paused_until=st.none() | finite,
    last_detail=st.text(max_size=40),
    open_alerts=st.lists(st.text(max_size=10), max_size=2).map(tuple),
)
states = st.builds(
    PersistedState,
    saved_at=finite,
    nodes=st.dictionaries(st.text(min_size=1, max_size=8), records, max_size=3),
    intents=st.dictionaries(st.sampled_from(["a", "b"]), st.just(None), max_size=2).map(
        lambda d: {n: CycleIntent(n, 1.0, IntentStep.OFF) for n in d}
    ),
    fleet_cycles=st.lists(st.tuples(st.text(max_size=5), finite), max_size=3).map(tuple),
)


@SETTINGS
@given(states)
def test_a_saved_state_loads_back_equal(state: PersistedState) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        store.save(state)
        loaded = store.load()
        assert loaded.problem is None
        assert loaded.state == state


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda v, n: (
                json.dumps({"version": 1, "saved_at": 0, "nodes": {"a": v}})
                .replace("0,", n + ",", 1)
                .encode()
            ),
            json_values,
            st.sampled_from(["0", "1e400", "-1e400", "NaN", "1" * 400, "1e13", "-0.0"]),
        ),
    )
)
def test_any_state_file_content_loads_or_is_set_aside_never_raises(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        (Path(tmp) / STATE_FILE).write_bytes(content)
        loaded = store.load()
        if loaded.problem is None:
            assert math.isfinite(loaded.state.saved_at)
            store.save(loaded.state)  # whatever loads can be written back
            assert store.load().state == loaded.state
        else:
            assert loaded.moved_to is not None and loaded.moved_to.exists()
            assert not (Path(tmp) / STATE_FILE).exists()
