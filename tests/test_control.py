"""The operator control channel: daemon lock, state lock, request/response files."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.core.errors import ControlError
from watchdog.state.control import (
    Op,
    Request,
    Response,
    new_request,
    respond,
    submit,
    take_requests,
    wait_response,
)
from watchdog.state.locks import DaemonLock, daemon_running, state_lock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from watchdog.state.locks import DaemonLock
    DaemonLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the daemon lock on ``tmp_path``, like a running daemon."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()


def test_it_reports_no_daemon_in_a_fresh_directory(tmp_path: Path) -> None:
    assert daemon_running(tmp_path) is None


def test_the_daemon_lock_excludes_a_second_daemon_and_names_the_first(
    tmp_path: Path, lock_holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(
        ControlError, match=rf"another cluster-watchdog daemon \(pid {lock_holder.pid}\)"
    ):
        DaemonLock(tmp_path).acquire(attempts=2)
    assert daemon_running(tmp_path) == lock_holder.pid


def test_a_daemon_killed_with_sigkill_no_longer_counts_as_running(
    tmp_path: Path, lock_holder: subprocess.Popen[str]
) -> None:
    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait()
    assert (tmp_path / "daemon.lock").read_text().strip() == str(lock_holder.pid)
    assert daemon_running(tmp_path) is None  # the kernel dropped the flock; the pid file lies
    lock = DaemonLock(tmp_path)
    lock.acquire()
    assert daemon_running(tmp_path) == os.getpid()
    lock.release()


def test_releasing_the_daemon_lock_lets_the_next_daemon_start(tmp_path: Path) -> None:
    first = DaemonLock(tmp_path)
    first.acquire()
    with pytest.raises(ControlError):
        DaemonLock(tmp_path).acquire(attempts=1)
    first.release()
    assert daemon_running(tmp_path) is None
    second = DaemonLock(tmp_path)
    second.acquire()
    assert (tmp_path / "daemon.lock").read_text().strip() == str(os.getpid())
    second.release()


def test_probing_for_a_daemon_does_not_block_a_daemon_from_starting(tmp_path: Path) -> None:
    # A CLI probing at the same moment must not make the daemon think another daemon runs.
    fd = os.open(tmp_path / "daemon.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what daemon_running holds for an instant
    assert daemon_running(tmp_path) is None  # two probes do not see each other as a daemon
    os.close(fd)
    lock = DaemonLock(tmp_path)
    lock.acquire()
    lock.release()


def test_the_state_lock_keeps_a_second_writer_out_until_released(tmp_path: Path) -> None:
    with (
        state_lock(tmp_path),
        pytest.raises(ControlError, match="locked"),
        state_lock(tmp_path, timeout=0.1),
    ):
        pass
    with state_lock(tmp_path, timeout=0.1):
        pass


def test_requests_are_taken_oldest_first_and_removed(tmp_path: Path) -> None:
    later = new_request(Op.RESUME, "spark-1", now=300.0)
    earlier = new_request(Op.PAUSE, "spark-1", until=9000.0, now=100.0)
    middle = new_request(Op.CYCLE, "spark-2", now=200.0)
    for request in (later, earlier, middle):
        submit(tmp_path, request)
    assert take_requests(tmp_path) == [earlier, middle, later]
    assert take_requests(tmp_path) == []
    assert list((tmp_path / "requests").iterdir()) == []


def test_new_requests_get_unique_file_safe_ids(tmp_path: Path) -> None:
    ids = {new_request(Op.CLEAR, "n", now=1.0).id for _ in range(100)}
    assert len(ids) == 100
    request = new_request(Op.PAUSE, "n", until=5.0, now=2.5)
    assert (request.op, request.node, request.until, request.requested_at) == (
        Op.PAUSE,
        "n",
        5.0,
        2.5,
    )


def test_it_refuses_an_id_that_would_escape_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ControlError):
        submit(tmp_path, Request("../state", Op.CLEAR, "n"))
    with pytest.raises(ControlError):
        respond(tmp_path, Response("../../etc/x", True, "ok"))
    assert not (tmp_path / "state.json").exists()


def test_only_cycle_needs_a_running_daemon() -> None:
    assert {op for op in Op if op.needs_daemon} == {Op.CYCLE}


def test_malformed_request_files_are_set_aside_and_answered_without_crashing(
    tmp_path: Path,
) -> None:
    good = new_request(Op.CLEAR, "spark-1", now=10.0)
    submit(tmp_path, good)
    folder = tmp_path / "requests"
    (folder / "garbage.json").write_bytes(b"\xff\x00{{{")
    (folder / "bad-op.json").write_text(
        json.dumps({"id": "bad-op", "op": "reboot", "node": "n", "until": None, "requested_at": 1})
    )
    (folder / "wrong-id.json").write_text(
        json.dumps({"id": "other", "op": "clear", "node": "n", "until": None, "requested_at": 1})
    )
    (folder / "no-node.json").write_text(json.dumps({"id": "no-node", "op": "clear"}))
    (folder / "a.json.tmp").write_text("{")  # a submit in progress is not a request yet

    assert take_requests(tmp_path) == [good]
    rejected = sorted(p.name.split(".json")[0] for p in (folder / "rejected").iterdir())
    assert rejected == ["bad-op", "garbage", "no-node", "wrong-id"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.json.tmp", "rejected"]
    answer = json.loads((tmp_path / "responses" / "bad-op.json").read_text())
    assert answer["ok"] is False
    assert "reboot" in answer["message"]
    assert take_requests(tmp_path) == []


async def test_wait_response_returns_the_daemons_answer_and_consumes_it(tmp_path: Path) -> None:
    request = new_request(Op.PAUSE, "spark-1", now=time.time())
    submit(tmp_path, request)

    async def daemon() -> None:
        await asyncio.sleep(0.05)
        for taken in take_requests(tmp_path):
            respond(tmp_path, Response(taken.id, True, f"paused {taken.node}"))

    task = asyncio.create_task(daemon())
    response = await wait_response(tmp_path, request.id, timeout=2.0, poll=0.01)
    await task
    assert response == Response(request.id, True, "paused spark-1")
    assert list((tmp_path / "responses").iterdir()) == []


@pytest.mark.parametrize("kind", ["huge", "fifo"])
async def test_a_response_that_is_not_a_small_regular_file_is_refused_not_read(
    tmp_path: Path, kind: str
) -> None:
    request = new_request(Op.PAUSE, "spark-1", now=time.time())
    submit(tmp_path, request)
    path = tmp_path / "responses" / f"{request.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "huge":
        path.write_text('{"id": "x", "ok": true, "message": "' + "a" * 100_000 + '"}')
    else:
        os.mkfifo(path)
    with pytest.raises(ControlError):
        await wait_response(tmp_path, request.id, timeout=2.0, poll=0.01)


async def test_wait_response_times_out_with_none_when_no_daemon_answers(tmp_path: Path) -> None:
    request = new_request(Op.RESUME, "spark-1", now=time.time())
    submit(tmp_path, request)
    respond(tmp_path, Response("someone-else", True, "not for you"))
    started = time.monotonic()
    assert await wait_response(tmp_path, request.id, timeout=0.2, poll=0.02) is None
    assert 0.15 <= time.monotonic() - started < 1.0
