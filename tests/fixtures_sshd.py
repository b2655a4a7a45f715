"""The ``real_sshd`` fixture: Debian's real OpenSSH server on a loopback port.

Each test gets its own sshd with a freshly generated host key, its own config and PidFile,
listening only on 127.0.0.1 and a free port, in its own session so teardown can kill the
listener and any per-connection children by process group. ``.stop()``/``.cont()`` send
SIGSTOP/SIGCONT: a stopped sshd still has its listen socket, so the kernel keeps completing TCP
handshakes into the backlog while nobody writes a banner — the wedge the watchdog looks for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import need

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start as root without it
START_DEADLINE = 5.0


@dataclass
class RealSshd:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGSTOP the listener and wait until the kernel reports it stopped."""
        os.kill(self.pid, signal.SIGSTOP)
        _wait_state(self.pid, stopped=True)

    def cont(self) -> None:
        """SIGCONT the listener and wait until it runs again."""
        os.kill(self.pid, signal.SIGCONT)
        _wait_state(self.pid, stopped=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _wait_state(pid: int, *, stopped: bool) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        if (state == "T") == stopped:
            return
        time.sleep(0.005)
    raise AssertionError(f"sshd {pid} did not become {'stopped' if stopped else 'running'}")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _banner(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=0.5) as s:
        return s.recv(256)


def _start(workdir: Path, host: str, port: int) -> RealSshd:
    key = workdir / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)],
            check=True,
            capture_output=True,
        )
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        f"ListenAddress {host}\n"
        f"HostKey {key}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        "UsePAM no\n"
        "PermitRootLogin no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "AuthorizedKeysFile none\n"
        "LogLevel VERBOSE\n"
    )
    log = workdir / "sshd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: teardown reaches the session children
        )
    return RealSshd(host, port, proc, log)


def _wait_banner(sshd: RealSshd) -> bool:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if sshd.proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if _banner(sshd.host, sshd.port).startswith(b"SSH-2.0-"):
                return True
        time.sleep(0.02)
    return False


def _kill(sshd: RealSshd) -> None:
    """SIGCONT (a stopped process cannot act on SIGTERM), SIGTERM, then SIGKILL."""
    pgid = sshd.pid  # start_new_session made sshd its group leader
    for sig in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
    try:
        sshd.proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        sshd.proc.wait(timeout=3)
    # per-connection children left in the group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def real_sshd(tmp_path: Path) -> Iterator[RealSshd]:
    """A running real sshd on 127.0.0.1:<free port>; always killed at teardown."""
    need(SSHD.exists(), "openssh-server (/usr/sbin/sshd)")
    need(shutil.which("ssh-keygen") is not None, "openssh-client (ssh-keygen)")
    if not PRIVSEP_DIR.exists():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
    host = "127.0.0.1"
    sshd: RealSshd | None = None
    for _attempt in range(3):  # the free port may be taken between probe and bind: retry
        sshd = _start(tmp_path, host, _free_port(host))
        if _wait_banner(sshd):
            break
        _kill(sshd)
    else:
        log = sshd.log_text() if sshd else ""
        pytest.fail(f"real sshd did not start and speak:\n{log}", pytrace=False)
    assert sshd is not None
    try:
        yield sshd
    finally:
        _kill(sshd)
