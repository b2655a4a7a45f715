"""The incident log: a bounded, append-only record of alerts, power actions and pages.

Owns ``history.jsonl`` in the state directory: one JSON object per line, appended with
``O_APPEND`` and fsync'd before the call returns, so a crash loses at most the line being
written — a torn last line is skipped when read, and the next record starts a new line.
When the file passes :data:`MAX_BYTES` it is renamed to ``history.jsonl.1`` (replacing the
previous one, directory fsync'd) and a new file begins: the log never holds more than twice
the cap. Reading needs no lock and no daemon: the CLI's ``history`` reads the same files.

Records (``kind``): ``alert`` (a trigger or resolve the engine raised), ``power`` (a power
action with each step's outcome), ``page`` (an alert a channel delivered). Only names from
the config, enum values and the watchdog's own one-line summaries are stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from watchdog.core.errors import StoreError
from watchdog.core.model import AlertEvent, PowerAction

log = logging.getLogger("watchdog.history")


class Step(Protocol):
    """One step of a power procedure, as the log records it."""

    @property
    def step(self) -> Enum: ...
    @property
    def ok(self) -> bool: ...


class Outcome(Protocol):
    """What a power procedure reports (the power procedure's outcome has this shape)."""

    @property
    def ok(self) -> bool: ...
    @property
    def left_off(self) -> bool: ...
    @property
    def steps(self) -> Sequence[Step]: ...


HISTORY_FILE = "history.jsonl"
MAX_BYTES = 1 << 20  # rotate past 1 MiB: two files, at most 2 MiB
MAX_LINE = 4096  # longer lines are not ours: skipped when read, never written
MAX_TEXT = 300  # summaries are cut to this


def _files(state_dir: Path) -> list[Path]:
    """Oldest first: the rotated file, then the current one."""
    return [state_dir / f"{HISTORY_FILE}.1", state_dir / HISTORY_FILE]


def append(state_dir: Path, record: dict[str, Any]) -> None:
    """Append one record and fsync it; an I/O error is logged, never raised (it is a log)."""
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n"
    if len(line) > MAX_LINE:
        log.warning("history record of %s not written: too long", record.get("kind"))
        return
    path = state_dir / HISTORY_FILE
    try:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size + len(line) > MAX_BYTES:
                _rotate(state_dir)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # end a line torn by a crash: this record stays whole
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("history not written: %s", exc.strerror or type(exc).__name__)


def _rotate(state_dir: Path) -> None:
    current, rotated = state_dir / HISTORY_FILE, state_dir / f"{HISTORY_FILE}.1"
    current.replace(rotated)
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(state_dir: Path) -> Iterator[dict[str, Any]]:
    """Every readable record, oldest first; torn, oversized or foreign lines are skipped.
    A file that exists but cannot be read raises :class:`StoreError`."""
    for path in _files(state_dir):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:  # e.g. not root: the state directory is the daemon's
            raise StoreError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        for raw in data.split(b"\n"):
            if not raw or len(raw) > MAX_LINE:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a torn last line after a crash
            if isinstance(record, dict) and isinstance(record.get("t"), int | float):
                yield record


# --------------------------------------------------------------------------- the hooks
def _cut(text: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def alert_raised(state_dir: Path, event: AlertEvent) -> None:
    append(
        state_dir,
        {
            "t": event.at,
            "kind": "alert",
            "node": event.node,
            "cluster": event.cluster,
            "condition": event.condition.value,
            "status": event.status.value,
            "summary": _cut(event.summary),
        },
    )


def power_done(
    state_dir: Path, action: PowerAction, outcome: Outcome, cluster: str, now: float
) -> None:
    append(
        state_dir,
        {
            "t": now,
            "kind": "power",
            "node": action.node,
            "cluster": cluster,
            "action": action.kind.value,
            "manual": action.manual,
            "ok": outcome.ok,
            "left_off": outcome.left_off,
            "steps": [[s.step.value, s.ok] for s in outcome.steps],
        },
    )


def page_delivered(state_dir: Path, channel: str, event: AlertEvent, now: float) -> None:
    append(
        state_dir,
        {
            "t": now,
            "kind": "page",
            "node": event.node,
            "cluster": event.cluster,
            "condition": event.condition.value,
            "status": event.status.value,
            "channel": channel,
        },
    )
