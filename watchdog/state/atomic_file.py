"""Crash-safe writing of the files in the state directory (a helper shared by adapters).

Owns two rules for every file the watchdog writes there (``state.json``, control requests
and responses, lock files), so that the store and the control channel apply them the same
way without importing each other:

* :func:`write_atomic` writes a temporary file in the target's directory, fsyncs it,
  ``os.replace``-s it over the target and fsyncs the directory. After a crash (or a
  ``kill -9``, or a power loss) the target is either the old or the new version, never a
  mix, and a rename that returned is on disk. The temporary name starts with a dot and ends
  in ``.tmp``, so a reader that globs for the target's suffix never sees a half-written file.
* :func:`adopt` gives a file that root creates (the CLI run with sudo) to the owner of its
  directory. Under systemd ``DynamicUser`` the daemon runs as an unprivileged uid: a
  root-owned 0600 state file would be unreadable to it and get moved aside, resetting every
  budget; a root-owned request or lock file would be refused.

Errors are plain :class:`OSError`; each caller translates them into its own error type.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temp_prefix(target: Path) -> str:
    """The name prefix of ``target``'s temporary files (for a sweep of crash leftovers)."""
    return f".{target.name}."


def write_atomic(target: Path, data: bytes) -> None:
    """Durably replace ``target`` with ``data``: mode 0600, owned like its directory.

    On any failure the temporary file is removed and ``target`` is left as it was.
    """
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            adopt(out.fileno(), directory)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (the entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def adopt(fd: int, directory: Path) -> None:
    """When run as root, give the open file ``fd`` to ``directory``'s (non-root) owner."""
    if os.geteuid() != 0:
        return
    owner = directory.stat()
    if (owner.st_uid, owner.st_gid) == (0, 0):
        return
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
        os.fchown(fd, owner.st_uid, owner.st_gid)


def adopt_directory(folder: Path) -> None:
    """When run as root, give ``folder`` to the owner of its parent directory."""
    if os.geteuid() != 0:
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        adopt(fd, folder.parent)
    finally:
        os.close(fd)
