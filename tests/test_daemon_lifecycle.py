"""The daemon's lifecycle: flag-only signal handlers, a reload as its own step of the main loop,
and a stop that a second signal forces (with the exit status 128 + that signal's number)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from watchdog.service.daemon import Daemon

_ENV = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}
_CONFIG = """
watchdog: {{state_dir: "{state}"}}
policy: {{failure_threshold: {threshold}}}
clusters:
  - name: spark
    endpoint: {{base_url: "http://127.0.0.1:9", model: m}}
    nodes:
      - {{name: spark-1, host: 127.0.0.1, plug: {{type: dry_run}}}}
"""


def _write(path: Path, state: Path, threshold: int) -> None:
    path.write_text(_CONFIG.format(state=state, threshold=threshold))


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], bool]:
    return lambda: any(text in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_first_stop_signal_asks_for_a_graceful_stop_and_a_second_forces_it(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    daemon = Daemon(tmp_path / "config.yaml", install_signals=False, env=_ENV)
    daemon.handle_exit(sig)
    assert daemon.should_exit and not daemon.force_exit and daemon.exit_code == 0
    daemon.handle_exit(sig)
    assert daemon.should_exit and daemon.force_exit and daemon.exit_code == code


def test_a_reload_request_is_not_a_stop_request(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "config.yaml", install_signals=False, env=_ENV)
    daemon.request_reload()
    daemon.request_reload()
    assert daemon.reload_requested and not daemon.should_exit and not daemon.force_exit
    daemon.request_stop()  # the stop after reloads is the first one: graceful
    assert daemon.should_exit and not daemon.force_exit


async def test_a_reload_adopts_the_new_config_and_the_daemon_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchdog")
    config, state = tmp_path / "config.yaml", tmp_path / "state"
    _write(config, state, threshold=3)
    daemon = Daemon(config, install_signals=False, configure_logging=False, env=_ENV)
    task = asyncio.create_task(daemon.serve())
    try:
        await asyncio.wait_for(daemon.started.wait(), 20)
        _write(config, state, threshold=5)
        daemon.request_reload()
        await _until(_logged(caplog, "config reloaded: 1 change(s): policy.failure_threshold"))
        assert daemon.engine is not None and daemon.engine.cfg.policy.failure_threshold == 5
        await asyncio.sleep(1.5)  # a main-loop turn after the reload: still serving
        assert not task.done() and not daemon.should_exit
        assert not _logged(caplog, "cluster-watchdog stopping")()
        daemon.request_reload()  # and again: every reload is its own step
        await _until(_logged(caplog, "config reloaded: 0 change(s): none"))
        assert not task.done()
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


async def test_a_stop_asked_together_with_a_reload_stops_without_reloading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchdog")
    config, state = tmp_path / "config.yaml", tmp_path / "state"
    _write(config, state, threshold=3)
    daemon = Daemon(config, install_signals=False, configure_logging=False, env=_ENV)
    task = asyncio.create_task(daemon.serve())
    await asyncio.wait_for(daemon.started.wait(), 20)
    daemon.request_reload()
    daemon.request_stop()
    assert await asyncio.wait_for(task, 20) == 0
    assert _logged(caplog, "cluster-watchdog stopping")()
    assert not _logged(caplog, "config reload")()
