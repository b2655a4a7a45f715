"""Persisted state: round trip, atomic crash-safe writes, intents on disk, bad files set aside."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from watchdog.core.errors import StoreError
from watchdog.state.store import (
    SCHEMA_VERSION,
    CycleIntent,
    IntentStep,
    NodeRecord,
    PersistedState,
    SchemaError,
    Store,
    from_json,
    to_json,
)


def full_state(i: int = 0) -> PersistedState:
    """A state that sets every field to a non-default value, distinct per ``i``."""
    rec = NodeRecord(
        node_class="wedged",
        since=1000.5 + i,
        consecutive_failures=3 + i,
        failing_since=990.25,
        seen_healthy=True,
        cycles=(100.0, 200.5 + i),
        latched=True,
        latched_reason="budget spent: 3 cycles in 6h",
        latched_at=1001.0,
        paused=True,
        paused_until=None if i % 2 else 5000.0,
        last_failure="no_banner",
        last_detail="TCP accepted, no banner in 5s ünïcode",
        last_cycle_at=200.5,
        boot_started_at=210.0,
    )
    return PersistedState(
        saved_at=1234.5 + i,
        nodes={"spark-1": rec, "spark-2": NodeRecord(), "removed-from-config": NodeRecord()},
        intents={"spark-1": CycleIntent("spark-1", 1000.0 + i, IntentStep.OFF, manual=True)},
        fleet_cycles=(("spark-1", 100.0), ("spark-2", 150.0 + i)),
    )


def test_it_round_trips_a_full_state_through_json(tmp_path: Path) -> None:
    state = full_state(3)
    assert from_json(json.loads(json.dumps(to_json(state)))) == state


def test_it_round_trips_a_full_state_through_the_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    store.save(full_state(1))
    result = store.load()
    assert result.problem is None
    assert result.state == full_state(1)
    assert result.state != full_state(2)


def test_it_writes_human_readable_sorted_json(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(full_state())
    text = store.path.read_text()
    assert text == json.dumps(to_json(full_state()), indent=2, sort_keys=True) + "\n"
    assert '\n  "fleet_cycles": [' in text


def test_it_starts_empty_without_a_problem_when_no_file_exists(tmp_path: Path) -> None:
    result = Store(tmp_path / "fresh").load()
    assert result.state == PersistedState()
    assert result.problem is None
    assert result.moved_to is None


def test_it_creates_the_directory_0700_and_the_file_0600(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "state")
    assert stat.S_IMODE((tmp_path / "a" / "state").stat().st_mode) == 0o700
    store.save(full_state())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_it_refuses_a_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError):
        Store(tmp_path / "f")


def test_it_raises_store_error_from_the_os_error_when_saving_fails(tmp_path: Path) -> None:
    store = Store(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    with pytest.raises(StoreError) as info:
        store.save(full_state())
    assert isinstance(info.value.__cause__, OSError)


def test_it_keeps_the_old_file_when_the_new_state_cannot_be_serialised(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(full_state(1))
    bad = PersistedState(nodes={"n": NodeRecord(since=float("nan"))})
    with pytest.raises(StoreError):
        store.save(bad)
    assert store.load().state == full_state(1)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_it_has_the_intent_on_disk_fsyncd_before_record_intent_returns(
    tmp_path: Path, disk_calls: list[str]
) -> None:
    store = Store(tmp_path, clock=lambda: 777.0)
    intent = CycleIntent("spark-2", 500.0, IntentStep.OFF_REQUESTED)
    new = store.record_intent(PersistedState(), intent)
    raw = json.loads(store.path.read_text())
    assert raw["intents"]["spark-2"] == {
        "node": "spark-2",
        "started_at": 500.0,
        "step": "off_requested",
        "manual": False,
    }
    assert disk_calls == ["fsync-file", "replace", "fsync-dir"]
    assert new.intents == {"spark-2": intent}
    assert new.saved_at == 777.0


def test_it_replaces_and_clears_intents_on_disk(tmp_path: Path) -> None:
    store = Store(tmp_path)
    state = store.record_intent(full_state(), CycleIntent("spark-2", 1.0, IntentStep.OFF))
    state = store.record_intent(state, CycleIntent("spark-2", 1.0, IntentStep.ON_REQUESTED))
    assert json.loads(store.path.read_text())["intents"]["spark-2"]["step"] == "on_requested"
    state = store.clear_intent(state, "spark-2")
    assert set(json.loads(store.path.read_text())["intents"]) == {"spark-1"}
    assert store.load().state == state


CORRUPTIONS = {
    "garbage": b"\x00\xff\xfe not json at all",
    "truncated": json.dumps(to_json(full_state()), indent=2).encode()[:150],
    "empty": b"",
    "wrong_schema_version": json.dumps({**to_json(full_state()), "version": 99}).encode(),
    "not_an_object": b"[1, 2, 3]",
    "wrong_field_type": json.dumps(
        {"version": SCHEMA_VERSION, "nodes": {"n": {"consecutive_failures": "3"}}}
    ).encode(),
    "unknown_field": json.dumps(
        {"version": SCHEMA_VERSION, "nodes": {"n": {"mood": "grumpy"}}}
    ).encode(),
    "bad_intent_step": json.dumps(
        {"version": SCHEMA_VERSION, "intents": {"n": {"node": "n", "started_at": 1, "step": "x"}}}
    ).encode(),
    "nan": b'{"version": 1, "saved_at": NaN}',
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_it_moves_a_corrupt_file_aside_and_starts_empty(tmp_path: Path, kind: str) -> None:
    store = Store(tmp_path, clock=lambda: 1700000000.0)
    store.path.write_bytes(CORRUPTIONS[kind])
    result = store.load()
    assert result.state == PersistedState()
    assert result.moved_to == tmp_path / "state.json.corrupt-1700000000"
    assert result.moved_to.read_bytes() == CORRUPTIONS[kind]
    assert result.problem is not None
    assert str(result.moved_to) in result.problem
    assert not store.path.exists()
    store.save(full_state())  # and the store is usable again
    assert store.load().state == full_state()


def test_it_moves_a_directory_in_place_of_the_file_aside(tmp_path: Path) -> None:
    store = Store(tmp_path, clock=lambda: 42.0)
    store.path.mkdir()
    (store.path / "junk").write_text("x")
    result = store.load()
    assert result.problem is not None
    assert result.state == PersistedState()
    assert result.moved_to is not None and (result.moved_to / "junk").exists()
    store.save(full_state())
    assert store.load().state == full_state()


def test_it_never_overwrites_an_earlier_corrupt_copy(tmp_path: Path) -> None:
    store = Store(tmp_path, clock=lambda: 5.0)
    moved = []
    for content in (b"first", b"second"):
        store.path.write_bytes(content)
        moved.append(store.load().moved_to)
    assert moved[0] != moved[1]
    assert [m.read_bytes() for m in moved if m] == [b"first", b"second"]


def test_it_names_the_schema_version_it_rejects() -> None:
    with pytest.raises(SchemaError, match="99"):
        from_json({"version": 99})


def test_it_removes_only_stale_temp_files_left_by_a_crash(tmp_path: Path) -> None:
    store = Store(tmp_path)
    old, young = tmp_path / ".state.json.old.tmp", tmp_path / ".state.json.young.tmp"
    old.write_text("{")
    young.write_text("{")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    store.load()
    assert not old.exists()
    assert young.exists()


SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_store import full_state
    from watchdog.state.store import Store
    store = Store(Path(sys.argv[1]))
    i = 0
    while True:
        store.save(full_state(i))
        if i == 0:
            print("saved", flush=True)
        i += 1
    """
)


def test_a_save_killed_at_a_random_moment_leaves_the_old_or_the_new_file(
    tmp_path: Path,
) -> None:
    rng = random.Random(20240601)
    tests_dir = str(Path(__file__).parent)
    seen_versions = set()
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(tmp_path), tests_dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        raw = json.loads((tmp_path / "state.json").read_text())  # always parses
        i = int(raw["saved_at"] - full_state(0).saved_at)
        assert from_json(raw) == full_state(i)  # and is exactly one of the written versions
        seen_versions.add(i)
    assert len(seen_versions) > 1  # the kills really landed mid-loop
