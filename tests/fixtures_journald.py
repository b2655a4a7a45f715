"""Fixture: a throw-away, real ``systemd-journald`` that is not the host's.

``journald`` starts ``/lib/systemd/systemd-journald`` inside a private mount namespace
(``unshare --mount``) where ``/run`` (and ``/var/log/journal``, if the host has one) are fresh
tmpfs mounts, so the instance owns its sockets and journal files, nothing on the host changes,
and parallel tests never see each other's entries. It is ready in a few tens of milliseconds.

The test process stays in the host namespace and reaches the instance through the journald
process's root: ``/proc/PID/root/run/systemd/journal/socket`` (a Unix socket path resolves
through that magic link). Entries are read back by running ``journalctl`` inside the
namespace (``nsenter -t PID -m``), after ``journalctl --sync`` so the last datagram is on disk.

Measured alternative, not used: journald's namespace instances
(``systemd-journald NAME`` → ``/run/systemd/journal.NAME/socket``, ``journalctl
--namespace=NAME``) also run standalone, but they leave a journal directory under the host's
``/var/log/journal`` and sockets under ``/run/systemd`` to clean up.

Needs root, ``unshare``/``nsenter`` (util-linux) and systemd's ``systemd-journald`` and
``journalctl``; without them the test is skipped, or fails under ``CI=true``.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import need

JOURNALD = "/lib/systemd/systemd-journald"

# Runs as PID of the fixture's child, inside the new mount namespace, then becomes journald.
_INNER = """
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 tmpfs /var/log/journal; fi
exec {journald}
"""


def journald_available() -> tuple[bool, str]:
    """Whether a private journald can be started here, and what is missing if not."""
    missing = [t for t in ("unshare", "nsenter", "journalctl") if shutil.which(t) is None]
    if not os.access(JOURNALD, os.X_OK):
        missing.append(JOURNALD)
    if os.geteuid() != 0:
        missing.append("root (for unshare --mount)")
    return (not missing, ", ".join(missing))


def _text(value: Any) -> Any:
    """journalctl -o json gives non-printable values as byte arrays; give them back as text."""
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(value).decode("utf-8", "replace")
    return value


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (it survives exec), so
    a killed pytest run leaves no namespace behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Journald:
    """A running private journald: send to ``socket_path``, read with :meth:`entries`."""

    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def socket_path(self) -> str:
        return f"/proc/{self.pid}/root/run/systemd/journal/socket"

    def journalctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "journalctl", "--no-pager", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def entries(self, *matches: str) -> list[dict[str, Any]]:
        """All entries (``-o json -a``) matching journalctl ``FIELD=value`` matches."""
        self.journalctl("--sync")
        out = self.journalctl("-o", "json", "-a", *matches)
        return [
            {k: _text(v) for k, v in json.loads(line).items()}
            for line in out.stdout.splitlines()
            if line.strip()
        ]

    def wait_for(self, *matches: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Entries matching ``matches`` once at least ``count`` are there (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.entries(*matches)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


def start_journald(log_path: Path) -> Journald:
    """Start a private journald; its own stdout/stderr go to ``log_path``."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _INNER.format(journald=JOURNALD),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,  # unshare execs sh execs journald: same process
        )
    instance = Journald(process)
    comm = Path(f"/proc/{process.pid}/comm")
    deadline = time.monotonic() + 5
    # Ready once the shell has exec'd journald (mounts done: the socket is then the private
    # one, never a host journald's) and journald has bound its socket.
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if (
                comm.read_text().startswith("systemd-journal")
                and Path(instance.socket_path).exists()
            ):
                return instance
        except OSError:
            pass
        time.sleep(0.005)
    stop_journald(instance)
    raise RuntimeError(f"private journald did not start: {log_path.read_text(errors='replace')}")


def stop_journald(instance: Journald) -> None:
    if instance.process.poll() is None:
        instance.process.terminate()  # journald syncs and exits 0 on SIGTERM
        try:
            instance.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            instance.process.kill()
            instance.process.wait()


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[Journald]:
    """A private, real systemd-journald for one test."""
    ok, missing = journald_available()
    need(ok, f"private systemd-journald needs: {missing}")
    instance = start_journald(tmp_path / "journald.log")
    try:
        yield instance
    finally:
        stop_journald(instance)
