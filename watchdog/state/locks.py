"""The state directory's two locks: who is the daemon, and who may write ``state.json``.

Owns ``daemon.lock`` (:class:`DaemonLock`, held by the running daemon for its whole life;
:func:`daemon_running` asks whether one holds it) and ``state.lock`` (:func:`state_lock`,
which serialises the daemon's saves and an operator's offline edit). A CLI that edits the state
without a daemon calls :func:`daemon_running` *inside* ``state_lock``, so a daemon that starts
meanwhile cannot load the old state and overwrite the edit; the daemon therefore takes
:class:`DaemonLock` first, then loads (and saves) under :func:`state_lock`.

Liveness is judged by ``flock``, not by the pid in the file: the kernel drops the lock when
the holder dies, even by ``kill -9``. The operator inbox is :mod:`watchdog.state.control`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from watchdog.core.errors import ControlError
from watchdog.state import atomic_file

DAEMON_LOCK = "daemon.lock"
STATE_LOCK = "state.lock"


class DaemonLock:
    """Held by the running daemon for its whole life; one daemon per state directory."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / DAEMON_LOCK
        self._fd: int | None = None

    def acquire(self, *, attempts: int = 5) -> None:
        """Take the lock and write our pid; a short retry rides out a CLI's liveness probe."""
        if self._fd is not None:
            return
        fd = _open(self.path, os.O_RDWR | os.O_CREAT)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1:
                    os.close(fd)
                    pid = _read_pid(self.path)
                    raise ControlError(
                        f"another cluster-watchdog daemon (pid {pid}) is running with this "
                        "state directory"
                    ) from None
                time.sleep(0.05)
        try:
            # Truncate only now that we hold the lock: earlier would wipe a live daemon's pid.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise ControlError(f"cannot write {self.path}: {exc}") from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None


def daemon_running(directory: Path) -> int | None:
    """Pid of the daemon holding ``daemon.lock``, or None; -1 if its pid is not yet written."""
    try:
        fd = os.open(Path(directory) / DAEMON_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ControlError(f"cannot read {directory}: {exc} (run as the daemon's user)") from exc
    try:
        # A shared lock: concurrent probes from two CLIs do not mistake each other for a daemon.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        for _ in range(20):  # the holder writes its pid right after locking
            if (pid := _read_pid(Path(directory) / DAEMON_LOCK)) is not None:
                return pid
            time.sleep(0.01)
        return -1
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def state_lock(directory: Path, *, timeout: float = 10.0) -> Iterator[None]:
    """Serialise writers of ``state.json`` (daemon saves, CLI edits without a daemon)."""
    fd = _open(Path(directory) / STATE_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ControlError(
                        f"state in {directory} stayed locked for {timeout:g}s by another writer"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _open(path: Path, flags: int) -> int:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ControlError(f"cannot open {path}: {exc}") from exc
    with contextlib.suppress(OSError):
        atomic_file.adopt(fd, path.parent)
    return fd


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
