"""The crash-safe writer shared by the state store and the control channel."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from watchdog.state import atomic_file
from watchdog.state.control import Op, Response, new_request, respond, submit
from watchdog.state.store import PersistedState, Store

OTHER_UID, OTHER_GID = 4242, 4343  # an unprivileged owner, like systemd's DynamicUser


def test_it_replaces_the_target_with_a_0600_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_bytes(b"old")
    target.chmod(0o644)
    atomic_file.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_it_fsyncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path: Path, disk_calls: list[str]
) -> None:
    atomic_file.write_atomic(tmp_path / "x.json", b"{}")
    assert disk_calls == ["fsync-file", "replace", "fsync-dir"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.json"
    target.write_bytes(b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_file.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_its_temp_files_never_match_the_targets_suffix(tmp_path: Path) -> None:
    target = tmp_path / "abc.json"
    name = f"{atomic_file.temp_prefix(target)}123{atomic_file.TMP_SUFFIX}"
    assert name.startswith(".") and not name.endswith(".json")


def _expected_owner(directory: Path) -> tuple[int, int]:
    """Root hands files to the directory's owner; anyone else keeps their own files."""
    if os.geteuid() == 0:
        st = directory.stat()
        return st.st_uid, st.st_gid
    return os.geteuid(), os.getegid()


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def _owned_by_other(directory: Path) -> Path:
    directory.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(directory, OTHER_UID, OTHER_GID)
    return directory


def test_the_state_file_goes_to_the_state_directorys_owner(tmp_path: Path) -> None:
    state_dir = _owned_by_other(tmp_path / "state")
    store = Store(state_dir)
    store.save(PersistedState(saved_at=1.0))
    assert _owner(store.path) == _expected_owner(state_dir)
    assert store.load().state == PersistedState(saved_at=1.0)


def test_request_and_response_files_and_their_folders_go_to_the_directorys_owner(
    tmp_path: Path,
) -> None:
    state_dir = _owned_by_other(tmp_path / "state")
    request = new_request(Op.PAUSE, "spark-1", now=1700000000.0)
    submit(state_dir, request)
    respond(state_dir, Response(request.id, True, "paused"))
    for path in (
        state_dir / "requests",
        state_dir / "requests" / f"{request.id}.json",
        state_dir / "responses",
        state_dir / "responses" / f"{request.id}.json",
    ):
        assert _owner(path) == _expected_owner(state_dir), path


def test_a_file_in_the_writers_own_directory_stays_with_the_writer(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_file.write_atomic(target, b"{}")
    assert _owner(target) == (os.geteuid(), os.getegid())
