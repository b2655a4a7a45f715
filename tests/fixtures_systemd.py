"""Fixture: a real systemd as PID 1 of private namespaces, running only the test's units.

``start_systemd_ns(units, workdir)`` runs ``tests/systemd_ns.sh``, which boots
``/lib/systemd/systemd`` in new pid, mount, uts, ipc, net and cgroup namespaces (about 0.3 s).
The host is not touched: ``/etc`` and ``/var`` are overlays whose changes land in ``workdir``,
``/tmp`` is a fresh tmpfs into which only ``workdir`` is carried (so keep every file the units
need — configs, credential sources — inside ``workdir``), the network namespace is empty
(loopback only), and the only host-side trace is one cgroup2 directory, removed on stop.
Besides the test's units, the instance gets stub targets (so units with default dependencies
load) and its own ``systemd-journald``, so ``journal()`` reads what the units logged — through
stdout or journald's native protocol.

API (:class:`SystemdNS`)::

    ns = start_systemd_ns(unitdir, tmp_path)       # or the `systemd_ns` factory fixture
    ns.systemctl("start", "x.service")             # CompletedProcess[str], never raises
    ns.show("x.service", "ActiveState")            # one property's value
    ns.wait_for("x.service", "ActiveState", "active", timeout=10)  # -> bool
    ns.journal("x.service")                        # list of journalctl -o json entries
    ns.write_unit("y.service", text); ns.systemctl("daemon-reload")
    ns.stop()                                      # SIGKILL + cgroup cleanup (idempotent)

For the real daemon (``cluster-watchdog run``), install the shipped unit with a drop-in —
measured: the daemon starts under the full hardening, reaches READY=1, reports STATUS=,
logs structured events, reloads a changed config on ``systemctl reload`` and stops cleanly::

    exe, pythonpath = unit_python()
    (src / "cluster-watchdog.service").write_text(shipped_unit_text)
    (src / "cluster-watchdog.service.d").mkdir()
    (src / "cluster-watchdog.service.d" / "test.conf").write_text(f'''[Service]
    ExecStart=
    ExecStart={exe} -m watchdog run -c /etc/cluster-watchdog/config.yaml
    Environment=PYTHONPATH={pythonpath}
    BindReadOnlyPaths={workdir}/cfg:/etc/cluster-watchdog
    LoadCredential=vllm-api-key:{workdir}/vllm-api-key
    WatchdogSec=2s
    RestartSec=200ms
    ''')
    ns = start_systemd_ns(src, workdir)

Why each line: ``DynamicUser=``/``ProtectHome=`` hide ``/root`` and ``/home``, so a venv built
from a pyenv Python there cannot start; :func:`unit_python` picks a system interpreter of the
same version and puts the project and the venv's ``site-packages`` on ``PYTHONPATH``.
``PrivateTmp=`` hides the test's ``/tmp``: ``BindReadOnlyPaths=`` maps a host directory
holding ``config.yaml`` (mode 0644, directories world-traversable: the dynamic user reads it)
to ``/etc/cluster-watchdog``; edit the file and ``systemctl reload`` to test reloads. Secrets
go through ``LoadCredential=`` (PID 1 reads them as root; a ``0600`` file is fine) and the
config's ``*_credential`` keys. The namespace has only loopback: the simulators must run inside
it too (e.g. as a sibling unit), not in the test process.

Needs root, util-linux ``unshare``/``nsenter`` and a cgroup2 hierarchy (``/sys/fs/cgroup`` or,
on hybrid hosts, ``/sys/fs/cgroup/unified``); skipped otherwise, failed under ``CI=true``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import need

SYSTEMD = "/lib/systemd/systemd"
SCRIPT = Path(__file__).with_name("systemd_ns.sh")
PROJECT = Path(__file__).resolve().parent.parent
START_TARGET = "cw-e2e.target"
_STUB_TARGETS = (
    "sysinit",
    "basic",
    "sockets",
    "timers",
    "paths",
    "slices",
    "local-fs",
    "local-fs-pre",
    "swap",
    "shutdown",
    "umount",
    "network",
    "network-online",
    "network-pre",
    "nss-lookup",
    "nss-user-lookup",
    "remote-fs",
    "multi-user",
    "emergency",
    "rescue",
    "final",
)
_JOURNALD_UNITS = (
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
)
_counter = itertools.count()


def cgroup2_root() -> Path | None:
    """Where the host mounts cgroup2: ``/sys/fs/cgroup/unified`` on hybrid hosts."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = {line.split()[1] for line in mounts if line.split()[2] == "cgroup2"}
    for candidate in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if candidate in points:
            return Path(candidate)
    return None


def systemd_ns_available() -> tuple[bool, str]:
    missing = [
        t
        for t in ("unshare", "nsenter", "systemctl", "journalctl", "sysctl")
        if shutil.which(t) is None
    ]
    if not os.access(SYSTEMD, os.X_OK):
        missing.append(SYSTEMD)
    if os.geteuid() != 0:
        missing.append("root")
    if cgroup2_root() is None:
        missing.append("a cgroup2 mount")
    return (not missing, ", ".join(missing))


def unit_python() -> tuple[str, str] | None:
    """(interpreter, PYTHONPATH) that can run this project inside a hardened unit.

    A unit with ``DynamicUser=yes`` and ``ProtectHome=yes`` sees no ``/root`` or ``/home``, and
    runs as an unprivileged user: the interpreter and every directory on the path must be
    world-readable outside those trees. Our venv's own packages are pure Python or abi3/cp311
    builds, so a system interpreter of the same minor version can import them.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = sysconfig.get_paths()["purelib"]
    candidates = [
        os.path.realpath(sys.executable),
        f"/usr/bin/{version}",
        f"/usr/local/bin/{version}",
    ]
    paths = [str(PROJECT), site]
    for exe in candidates:
        if not (os.access(exe, os.X_OK) and _world_usable(exe)):
            continue
        if all(_world_usable(p) for p in paths):
            return exe, ":".join(paths)
        # The checkout (or its .venv) sits where the unit cannot read it — under /root or
        # /tmp (a CI clone, say), or in a 0700 directory such as one made by mktemp -d: stage
        # a world-readable copy under /opt, which the namespace and the unit both see.
        return exe, ":".join(_staged(tuple(paths)))
    return None


def unit_file(path: Path) -> str:
    """A path to ``path`` (a test's helper script) that a hardened unit can read: the file
    itself when it is visible to the unit, else a world-readable copy next to the staged
    project."""
    if _world_usable(str(path)):
        return str(path)
    root = Path("/opt/cluster-watchdog-tests") / f"{os.getpid()}" / "files"
    root.mkdir(parents=True, exist_ok=True)
    for d in (root.parent.parent, root.parent, root):
        d.chmod(0o755)
    copy = root / path.name
    shutil.copyfile(path, copy)
    copy.chmod(0o644)
    atexit.register(shutil.rmtree, root.parent, True)
    return str(copy)


@functools.cache
def _staged(paths: tuple[str, str]) -> list[str]:
    project, site = paths
    root = Path("/opt/cluster-watchdog-tests") / f"{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    src, lib = root / "src", root / "site-packages"
    shutil.copytree(
        Path(project) / "watchdog", src / "watchdog", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        site,
        lib,
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "mypy*", "ruff*", "pip*"),
    )
    for d in [Path("/opt/cluster-watchdog-tests"), root, *root.rglob("*")]:
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o755)
        elif d.is_file():
            d.chmod(d.stat().st_mode | 0o444)
    atexit.register(shutil.rmtree, root, True)
    return [str(src), str(lib)]


# Trees a hardened unit in the namespace cannot see: ProtectHome= hides /root and /home,
# PrivateTmp= and the namespace's own tmpfs hide /tmp and /var/tmp, and /run is systemd's own.
_HIDDEN = (("root",), ("home",), ("tmp",), ("run",), ("var", "tmp"))


def _world_usable(path: str) -> bool:
    p = Path(path).resolve()
    if any(p.parts[1 : 1 + len(h)] == h for h in _HIDDEN):
        return False
    return all(d.stat().st_mode & 0o001 for d in [*p.parents, p] if d.is_dir())


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (it survives exec), so
    a killed pytest run leaves no namespace behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class SystemdNS:
    """A running systemd instance in private namespaces (see the module docstring)."""

    def __init__(self, workdir: Path, process: subprocess.Popen[bytes], cgroup: Path) -> None:
        self.workdir = workdir
        self.unitdir = workdir / "units"
        self.process = process
        self.cgroup = cgroup
        self.pid1 = 0

    def _enter(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-m", "-p", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def systemctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self._enter("systemctl", "--no-pager", *args, timeout=timeout)

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "--value", "-p", prop, unit).stdout.strip()

    def wait_for(
        self, unit: str, prop: str, want: str | Callable[[str], bool], timeout: float = 10.0
    ) -> bool:
        """Poll ``prop`` of ``unit`` until it equals ``want`` (or ``want(value)`` is true)."""
        check = want if callable(want) else (lambda v: v == want)
        deadline = time.monotonic() + timeout
        while True:
            if check(self.show(unit, prop)):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def journal(self, unit: str | None = None, *matches: str) -> list[dict[str, Any]]:
        """journalctl -o json entries (of ``unit``, if given), after a sync."""
        self._enter("journalctl", "--sync")
        args = ["journalctl", "--no-pager", "-o", "json", "-a", *matches]
        if unit is not None:
            args += ["-u", unit]
        out = self._enter(*args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, unit: str | None = None) -> list[str]:
        return [str(e.get("MESSAGE", "")) for e in self.journal(unit)]

    def write_unit(self, name: str, text: str) -> Path:
        path = self.unitdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def console(self) -> str:
        log = self.workdir / "logs" / "console.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # unshare ignores SIGTERM
        self.process.wait(timeout=10)
        _remove_cgroup(self.cgroup)


def _remove_cgroup(cgroup: Path) -> None:
    deadline = time.monotonic() + 5
    while cgroup.exists():
        for d in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):  # still populated: retried below
                d.rmdir()
        try:
            cgroup.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # processes still dying


def _remove_stale_cgroups(root: Path) -> None:
    """Drop cgroups left by test runs that were killed (their pid is in the name)."""
    for cgroup in root.glob("cw-e2e-*-*"):
        pid = cgroup.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                _remove_cgroup(cgroup)


def _support_units(unitdir: Path) -> None:
    for target in _STUB_TARGETS:
        path = unitdir / f"{target}.target"
        if not path.exists():
            path.write_text(f"[Unit]\nDescription=stub {target}.target (test namespace)\n")
    for name in _JOURNALD_UNITS:
        shutil.copy(f"/lib/systemd/system/{name}", unitdir / name)
    (unitdir / START_TARGET).write_text(
        "[Unit]\nDescription=cluster-watchdog e2e test boot\n"
        "Wants=systemd-journald.service\nAfter=systemd-journald.service\n"
    )


def start_systemd_ns(
    units: Path | None, workdir: Path, *, sysctl_conf: Path | None = None, timeout: float = 15
) -> SystemdNS:
    """Boot systemd with copies of ``units`` (files and ``*.d`` drop-in dirs) in ``workdir``.

    ``sysctl_conf``: a sysctl.d file applied inside the namespace (``net.*`` keys only matter
    there); by default unprivileged ICMP is opened for every group.
    """
    unitdir = workdir / "units"
    workdir.mkdir(parents=True, exist_ok=True)
    if units is not None:
        shutil.copytree(units, unitdir, dirs_exist_ok=True)
    unitdir.mkdir(parents=True, exist_ok=True)
    _support_units(unitdir)
    root = cgroup2_root()
    assert root is not None
    _remove_stale_cgroups(root)
    cgroup = root / f"cw-e2e-{os.getpid()}-{next(_counter)}"
    env = {
        **os.environ,
        "E2E": str(workdir),
        "UNITDIR": str(unitdir),
        "START_UNIT": START_TARGET,
        "CG": str(cgroup),
        "SYSCTL_CONF": str(sysctl_conf or ""),
    }
    with (workdir / "systemd_ns.log").open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(SCRIPT)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,  # the script execs unshare: same process
        )
    ns = SystemdNS(workdir, process, cgroup)
    try:
        _wait_booted(ns, timeout)
    except BaseException:
        ns.stop()
        raise
    return ns


def _wait_booted(ns: SystemdNS, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{ns.process.pid}/task/{ns.process.pid}/children")
    while time.monotonic() < deadline:
        if ns.process.poll() is not None:
            break
        if not ns.pid1:
            try:
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        ns.pid1 = int(pid)
            except OSError:
                pass
        elif ns.systemctl("is-system-running").stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.02)
    log = (ns.workdir / "systemd_ns.log").read_text(errors="replace")
    raise RuntimeError(f"systemd in namespaces did not boot: {log}{ns.console()}")


@pytest.fixture
def systemd_ns(tmp_path: Path) -> Iterator[Callable[[Path | None], SystemdNS]]:
    """Factory: ``ns = systemd_ns(unitdir)`` boots an instance, stopped after the test."""
    ok, missing = systemd_ns_available()
    need(ok, f"systemd in private namespaces needs: {missing}")
    started: list[SystemdNS] = []

    def start(units: Path | None) -> SystemdNS:
        ns = start_systemd_ns(units, tmp_path / f"systemd-{len(started)}")
        started.append(ns)
        return ns

    yield start
    for ns in started:
        ns.stop()
