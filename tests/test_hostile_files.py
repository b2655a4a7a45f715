"""Broken and hostile local input: state, config, secret and request files, and secrets in logs.

A clumsy operator or a damaged disk must never stop the daemon or wedge an operator command:
every file is read non-blocking and capped, a bad state file is set aside *and paged*, the
CLI refuses to overwrite what it could not read, a bad config is exit 78 with a message, a bad
request file is answered and set aside. And no secret, nor any 8-character piece of one,
reaches a log line or the CLI's output — third-party debug logs included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from watchdog.alerts.base import DeliveryError, post
from watchdog.config import load_config, parse_config
from watchdog.core.errors import ConfigError
from watchdog.edge import redact
from watchdog.service.daemon import Daemon
from watchdog.sim.hostile import HostileHttp, HttpAnswer
from watchdog.sim.receiver import AlertReceiver
from watchdog.state import control
from watchdog.state.store import MAX_STATE_BYTES, STATE_FILE, PersistedState, Store
from watchdog.telemetry.journal import setup_logging

MIB = 1024 * 1024
_ENV = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}


def _latched(saved_at: str) -> str:
    return (
        '{"version": 1, "saved_at": ' + saved_at + ', "fleet_cycles": [], "intents": {}, '
        '"nodes": {"spark-1": {"node_class": "given_up", "since": 1700000000.0, '
        '"latched": true, "latched_reason": "gave up", "cycles": [1700000000.0]}}}'
    )


BAD_STATES: dict[str, str | None] = {
    "a 400-digit integer": _latched("1" * 400),
    "1e400 (infinity)": _latched("1e400"),
    "NaN in saved_at": _latched("NaN"),
    "a 5000-digit integer": _latched("9" * 5000),
    "a negative timestamp beyond range": _latched("-1e300"),
    "nested 100 000 deep": "[" * 100_000 + "]" * 100_000,
    "a FIFO": None,
    "over the size cap": "",
}


def _make_bad_state(directory: Path, case: str) -> Path:
    path = directory / STATE_FILE
    text = BAD_STATES[case]
    if case == "a FIFO":
        os.mkfifo(path)
    elif case == "over the size cap":
        with path.open("wb") as f:  # sparse: costs no disk, only its declared size
            f.truncate(MAX_STATE_BYTES + 1)
    else:
        assert text is not None
        path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_a_state_file_that_cannot_be_loaded_is_moved_aside_and_reported(
    tmp_path: Path, case: str
) -> None:
    path = _make_bad_state(tmp_path, case)
    started = time.monotonic()
    loaded = Store(tmp_path).load()
    assert time.monotonic() - started < 2.0
    assert loaded.problem is not None and "unreadable" in loaded.problem
    assert loaded.state == PersistedState()
    assert loaded.moved_to is not None and (loaded.moved_to.exists() or case == "a FIFO")
    assert not path.exists() and not path.is_symlink()
    Store(tmp_path).save(loaded.state)  # and what is loaded can be saved again


_OFFLINE = """
watchdog: {{state_dir: "{state}"}}
clusters:
  - name: spark
    endpoint: {{base_url: "http://127.0.0.1:9", model: m}}
    nodes:
      - {{name: spark-1, host: 127.0.0.1, plug: {{type: dry_run}}}}
"""


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", *args],
        capture_output=True,
        text=True,
        env=_ENV,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.e2e  # runs cluster-watchdog as a real process
@pytest.mark.parametrize("case", ["NaN in saved_at", "a 400-digit integer", "a FIFO"])
def test_an_offline_edit_refuses_a_state_it_cannot_read_and_leaves_it_untouched(
    tmp_path: Path, case: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(_OFFLINE.format(state=state))
    path = _make_bad_state(state, case)
    before = path.read_bytes() if path.is_file() else None
    status = _cli("status", "-c", str(config))
    assert status.returncode == 0, status
    assert "unreadable" in status.stdout and "Traceback" not in status.stderr
    paused = _cli("pause", "spark-1", "-c", str(config))
    assert paused.returncode == 1, paused
    assert "unreadable" in paused.stderr and "nothing changed" in paused.stderr
    assert "Traceback" not in paused.stderr
    if before is not None:
        assert path.read_bytes() == before
    else:
        assert path.is_fifo()


@pytest.mark.parametrize("case", ["1e400 (infinity)", "a FIFO", "over the size cap"])
async def test_the_daemon_pages_when_it_sets_the_state_file_aside_and_keeps_running(
    tmp_path: Path, receiver: AlertReceiver, case: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _make_bad_state(state, case)
    config = tmp_path / "config.yaml"
    config.write_text(
        _OFFLINE.format(state=state)
        + f"alerts:\n  channels:\n    - {{type: webhook, url: '{receiver.url}/hook'}}\n"
    )
    daemon = Daemon(config, install_signals=False, configure_logging=False, env=_ENV)
    task = asyncio.create_task(daemon.serve())
    try:
        await asyncio.wait_for(daemon.started.wait(), 20)
        got = await receiver.wait_for(1, timeout=10)
        pages = [r.json for r in got if r.json and "state_reset" in json.dumps(r.json)]
        assert pages, [r.json for r in got]
        assert "unreadable" in json.dumps(pages[0])
        assert not task.done()
        # Once every node was seen on the fresh state, the page resolves: no page stays open.
        got = await receiver.wait_for(2, timeout=20)
        resets = [r.json for r in got if r.json and r.json.get("condition") == "state_reset"]
        assert [j["status"] for j in resets] == ["trigger", "resolve"], resets
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
    assert any(p.name.startswith(f"{STATE_FILE}.corrupt-") for p in state.iterdir())


@pytest.mark.e2e  # runs cluster-watchdog as a real process
def test_remote_text_persisted_with_a_lone_surrogate_does_not_break_status(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(_OFFLINE.format(state=state))
    (state / STATE_FILE).write_text(
        _latched("1700000000.0").replace('"gave up"', '"gave up: \\ud800\\u001b[2J"')
    )
    ran = _cli("status", "-c", str(config))
    assert ran.returncode == 0, ran
    assert "gave up" in ran.stdout and "\x1b" not in ran.stdout


@pytest.mark.e2e  # runs cluster-watchdog as a real process
async def test_the_longest_durations_check_config_accepts_are_ones_the_daemon_runs(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        _OFFLINE.format(state=tmp_path / "state").replace(
            "model: m}", "model: m, health: {interval: 366d, timeout: 366d}}"
        )
        + "policy: {confirm_interval: 366d, cycle_window: 366d, fleet_window: 366d}\n"
    )
    assert _cli("check-config", str(config)).returncode == 0
    daemon = Daemon(config, install_signals=False, configure_logging=False, env=_ENV)
    task = asyncio.create_task(daemon.serve())
    try:
        await asyncio.wait_for(daemon.started.wait(), 20)
        await asyncio.sleep(0.5)
        assert not task.done()
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


# --------------------------------------------------------------------------- config files
_NODE = "    nodes: [{name: n1, host: 127.0.0.1, plug: {type: dry_run}}]\n"
_BASE = "clusters:\n  - name: c\n    endpoint: {base_url: 'http://127.0.0.1:8000', model: m}\n"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_CONFIGS: dict[str, str] = {
    "a 400-digit integer": _BASE.replace(
        "model: m}", "model: m, max_response_bytes: " + "7" * 400 + "}"
    )
    + _NODE,
    "a 5000-digit integer": _BASE.replace(
        "model: m}", "model: m, max_response_bytes: " + "7" * 5000 + "}"
    )
    + _NODE,
    "flow lists 500 deep": _BASE + _NODE + "extra: " + _nested(500) + "\n",
    "interval 999999999d": _BASE.replace("model: m}", "model: m, health: {interval: 999999999d}}")
    + _NODE,
    "interval 1e308": _BASE.replace("model: m}", "model: m, health: {interval: 1e308}}") + _NODE,
    "interval 1.0e+308": _BASE.replace("model: m}", "model: m, health: {interval: 1.0e+308}}")
    + _NODE,
    "interval .inf": _BASE.replace("model: m}", "model: m, health: {interval: .inf}}") + _NODE,
    "base_url port 99999": _BASE.replace("127.0.0.1:8000", "127.0.0.1:99999") + _NODE,
}


@pytest.mark.e2e  # runs cluster-watchdog as a real process
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_hostile_config_value_is_exit_78_with_a_message(tmp_path: Path, case: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BAD_CONFIGS[case])
    ran = _cli("check-config", str(path))
    assert ran.returncode == 78, ran
    assert "config error" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    assert len(ran.stderr) < 1000


@pytest.mark.e2e  # runs cluster-watchdog as a real process
@pytest.mark.parametrize("case", ["/dev/zero", "a FIFO", "a directory", "a 100 MB file"])
def test_a_config_path_that_is_no_small_regular_file_is_exit_78_at_once(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "config.yaml"
    if case == "/dev/zero":
        path = Path("/dev/zero")
    elif case == "a FIFO":
        os.mkfifo(path)
    elif case == "a directory":
        path.mkdir()
    else:
        with path.open("wb") as f:
            f.truncate(100 * MIB)
    started = time.monotonic()
    ran = _cli("check-config", str(path), timeout=20)
    assert ran.returncode == 78, ran
    assert "config error" in ran.stderr and "Traceback" not in ran.stderr
    assert time.monotonic() - started < 15


def test_a_fifo_as_a_secret_file_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "key"
    os.mkfifo(fifo)
    text = _BASE.replace("model: m}", f"model: m, api_key_file: '{fifo}'}}") + _NODE
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert time.monotonic() - started < 2
    assert "FIFO" in str(caught.value)


def test_a_literal_secret_written_under_a_file_key_is_never_echoed() -> None:
    literal = "sk-live-0123456789abcdef"
    text = _BASE.replace("model: m}", f"model: m, api_key_file: '{literal}'}}") + _NODE
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert literal not in str(caught.value)
    assert "api_key_file" in str(caught.value)


# --------------------------------------------------------------------------- secrets in logs
SECRETS = {
    "VLLM_KEY": "sk-apikey-4b1f9e27c3d8a6",
    "SLACK_URL": "",  # filled in with the receiver's address
    "HC_URL": "",
    "PD_KEY": "R0UTINGKEY5e8c1a9d7f2b",
    "NTFY_TOKEN": "tk_ntfy93c7e1a4b8d2f6",
}


def _pieces(secret: str) -> list[str]:
    return [secret[i : i + 8] for i in range(len(secret) - 7)]


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        tail = secret.split("://", 1)[-1].split("/", 1)[-1] if "://" in secret else secret
        for piece in _pieces(tail):
            assert piece not in text, (piece, secret)


async def test_no_secret_or_piece_of_one_reaches_a_debug_log_even_from_httpx_and_httpcore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    echo = HostileHttp(HttpAnswer(status=400, echo=True, content_type="text/plain"))
    await echo.start()
    try:
        env = dict(SECRETS)
        env["SLACK_URL"] = f"{echo.url}/services/T0AB12CD/B0EF34GH/slackhook7d3e9a1c"
        env["HC_URL"] = f"{echo.url}/ping/5f0c3b8e-6a21-4d7e-9b44-1c2d3e4f5a6b"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "config.yaml"
        config.write_text(
            _BASE.replace("model: m}", "model: m, api_key: '${VLLM_KEY}'}")
            + _NODE
            + "alerts:\n  channels:\n"
            + "    - {type: slack, url: '${SLACK_URL}'}\n"
            + "    - {type: pagerduty, routing_key: '${PD_KEY}', url: '"
            + echo.url
            + "/v2/enqueue'}\n"
            + "    - {type: ntfy, url: '"
            + echo.url
            + "/topic', token: '${NTFY_TOKEN}'}\n"
            + "  heartbeat: {url: '${HC_URL}'}\n"
        )
        load_config(config)  # registers every resolved secret
        setup_logging("debug", journal=False)
        log = logging.getLogger("watchdog.test")
        async with httpx.AsyncClient(trust_env=False) as client:
            for url, headers in (
                (env["SLACK_URL"], {}),
                (env["HC_URL"], {}),
                (echo.url + "/v1/models", {"Authorization": f"Bearer {env['VLLM_KEY']}"}),
                (echo.url + "/topic", {"Authorization": f"Bearer {env['NTFY_TOKEN']}"}),
            ):
                await client.post(url, headers=headers, json={"routing_key": env["PD_KEY"]})
            try:
                await post(client, "slack", env["SLACK_URL"], request_timeout=5, json={})
            except DeliveryError as exc:
                log.warning("delivery failed: %s", exc)
        try:
            raise RuntimeError(f"boom with {env['PD_KEY']} inside")
        except RuntimeError:
            log.exception("an exception text")
        out, err = capfd.readouterr()
        assert "HTTP Request" in err or "receive_response_headers" in err  # debug did log
        _assert_clean(out + err, list(env.values()))
    finally:
        logging.getLogger().handlers.clear()
        await echo.stop()


async def test_a_failed_delivery_never_shows_a_piece_of_the_routing_key(
    receiver: AlertReceiver,
) -> None:
    key = SECRETS["PD_KEY"]
    redact.register(key)
    receiver.fail_next = 1
    receiver.fail_status = 400
    receiver.fail_body = "x" * 183 + key  # cut at 200 characters, 17 of the key would show
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(DeliveryError) as caught:
            await post(
                client, "pagerduty", receiver.url + "/v2/enqueue", request_timeout=5, json={}
            )
    _assert_clean(str(caught.value), [key])


@pytest.mark.e2e  # runs cluster-watchdog as a real process
def test_the_cli_output_is_redacted_and_always_encodable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-printed-5c9e2a7b1d"
    monkeypatch.setenv("VLLM_KEY", secret)
    config = tmp_path / "config.yaml"
    config.write_text(
        _BASE.replace("model: m}", "model: m, api_key: '${VLLM_KEY}'}")
        + _NODE.replace("name: n1", f"name: 'n1-{secret[:12]}'")
    )
    ran = subprocess.run(
        [sys.executable, "-m", "watchdog", "check-config", str(config)],
        capture_output=True,
        text=True,
        env={**_ENV, "VLLM_KEY": secret},
        timeout=30,
        check=False,
    )
    assert ran.returncode == 0, ran
    _assert_clean(ran.stdout + ran.stderr, [secret])


# --------------------------------------------------------------------------- request files
def test_a_malformed_request_file_is_answered_and_set_aside_and_the_others_still_run(
    tmp_path: Path,
) -> None:
    good = control.new_request(control.Op.PAUSE, "spark-1", now=time.time())
    control.submit(tmp_path, good)
    requests = tmp_path / control.REQUESTS
    (requests / "deep1.json").write_text("[" * 100_000 + "]" * 100_000)
    os.mkfifo(requests / "fifo1.json")
    (requests / "huge1.json").write_bytes(b" " * (128 * 1024))
    (requests / "num1.json").write_text(
        json.dumps({"id": "num1", "op": "pause", "node": "x", "until": None})[:-1]
        + ', "requested_at": '
        + "9" * 400
        + "}"
    )
    started = time.monotonic()
    taken = control.take_requests(tmp_path)
    assert time.monotonic() - started < 2
    assert [r.id for r in taken] == [good.id]
    rejected = {p.name.split(".")[0] for p in (requests / control.REJECTED).iterdir()}
    assert rejected == {"deep1", "fifo1", "huge1", "num1"}
    answers = {p.stem for p in (tmp_path / control.RESPONSES).glob("*.json")}
    assert {"deep1", "fifo1", "huge1", "num1"} <= answers
    assert control.take_requests(tmp_path) == []  # nothing left to trip over next tick
