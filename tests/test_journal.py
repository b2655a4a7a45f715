"""watchdog.telemetry.journal against a real, private systemd-journald, and its stderr fallback."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest
from fixtures_journald import Journald

from watchdog.core.model import EventType, FailureKind, NodeClass, ProbeKind, Severity
from watchdog.telemetry import journal
from watchdog.telemetry.journal import MESSAGE_IDS, StructuredHandler, log_event, setup_logging

pytestmark = pytest.mark.journald


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    # setup_logging changes global state: give later tests (of any file) what they had.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quieted = {name: logging.getLogger(name).level for name in journal._CHATTY_LOGGERS}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, old in quieted.items():
        logging.getLogger(name).setLevel(old)


def our_handler() -> StructuredHandler:
    return next(h for h in logging.getLogger().handlers if isinstance(h, StructuredHandler))


def test_an_event_reaches_journald_with_every_structured_field(journald: Journald) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    log_event(
        logging.getLogger("watchdog.engine.engine"),
        EventType.NODE_WEDGED,
        "spark-1 is wedged: ssh banner missing for 75s",
        severity=Severity.ERROR,
        node="spark-1",
        cluster="main",
        probe=ProbeKind.SSH,
        failure=FailureKind.NO_BANNER,
        node_class=NodeClass.WEDGED,
        action="power_cycle",
        state="wedged",
        failures=4,
    )
    [entry] = journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog")
    assert entry["MESSAGE"] == "spark-1 is wedged: ssh banner missing for 75s"
    assert entry["MESSAGE_ID"] == MESSAGE_IDS[EventType.NODE_WEDGED]
    assert entry["PRIORITY"] == "3"
    assert (entry["NODE"], entry["CLUSTER"], entry["PROBE"]) == ("spark-1", "main", "ssh")
    assert (entry["FAILURE"], entry["CLASS"], entry["ACTION"]) == (
        "no_banner",
        "wedged",
        "power_cycle",
    )
    assert (entry["EVENT"], entry["STATE"], entry["FAILURES"]) == ("node_wedged", "wedged", "4")
    assert entry["LOGGER"] == "watchdog.engine.engine"
    # CODE_* name the caller of log_event, not the helper itself.
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_an_event_reaches_journald_with_every_structured_field"
    assert entry["_PID"] == str(os.getpid())


def test_journalctl_finds_an_event_type_by_its_message_id(journald: Journald) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    logger = logging.getLogger("watchdog.test")
    log_event(logger, EventType.CYCLE_STARTED, "cycling spark-2", node="spark-2")
    log_event(logger, EventType.RECOVERED, "spark-2 recovered", node="spark-2")
    log_event(logger, EventType.CYCLE_STARTED, "cycling spark-1", node="spark-1")
    journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog", count=3)
    found = journald.entries(f"MESSAGE_ID={MESSAGE_IDS[EventType.CYCLE_STARTED]}")
    assert [e["MESSAGE"] for e in found] == ["cycling spark-2", "cycling spark-1"]
    found = journald.entries(f"MESSAGE_ID={MESSAGE_IDS[EventType.CYCLE_STARTED]}", "NODE=spark-1")
    assert [e["MESSAGE"] for e in found] == ["cycling spark-1"]


def test_a_multi_line_message_round_trips_exactly(journald: Journald) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    text = "first line\nsecond line with = and KEY=value\n\n  indented\ttabbed\nlast"
    log_event(
        logging.getLogger("t"),
        EventType.CONFIG_REJECTED,
        text,
        severity=Severity.WARNING,
        detail="a\nb",
    )
    [entry] = journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog")
    assert entry["MESSAGE"] == text
    assert entry["DETAIL"] == "a\nb"
    assert entry["PRIORITY"] == "4"


def test_an_entry_too_big_for_a_datagram_goes_through_a_memfd(journald: Journald) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    big = "x" * 300_000 + "\nend"  # > the ~212 KB datagram limit
    logging.getLogger("t").warning(big)
    [entry] = journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog")
    # Compared by digest: a failing diff of 300 KB helps nobody.
    got = entry["MESSAGE"]
    assert (len(got), sha256(got.encode()).hexdigest()) == (
        len(big),
        sha256(big.encode()).hexdigest(),
    )


def test_plain_records_get_a_priority_from_their_level_and_carry_tracebacks(
    journald: Journald,
) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    logger = logging.getLogger("watchdog.plain")
    logger.debug("filtered out by the level")
    logger.info("an info line")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    entries = journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog", count=2)
    assert [(e["PRIORITY"], e["MESSAGE"].splitlines()[0]) for e in entries] == [
        ("6", "an info line"),
        ("3", "it failed"),
    ]
    assert "ValueError: boom" in entries[1]["MESSAGE"]
    assert "MESSAGE_ID" not in entries[0]


def test_field_names_are_made_valid_for_journald(journald: Journald) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    weird = {"gpu-temp": 71, "_private": "p", "9lives": "nine", "tp size": 2, "skip": None}
    log_event(logging.getLogger("t"), EventType.DEGRADED, "fields", **weird)  # type: ignore[arg-type]
    [entry] = journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog")
    assert (entry["GPU_TEMP"], entry["PRIVATE"], entry["LIVES"], entry["TP_SIZE"]) == (
        "71",
        "p",
        "nine",
        "2",
    )
    assert "SKIP" not in entry
    assert journal.field_name("message_id") == "MESSAGE_ID"
    assert journal.field_name("__") is None


def test_extra_fields_cannot_override_the_core_fields(journald: Journald) -> None:
    setup_logging("info", journal=True, socket_path=journald.socket_path)
    log_event(
        logging.getLogger("t"), EventType.BLIND, "real message", message_id="0" * 32, priority="0"
    )
    [entry] = journald.wait_for("SYSLOG_IDENTIFIER=cluster-watchdog")
    assert entry["MESSAGE_ID"] == MESSAGE_IDS[EventType.BLIND]
    assert (entry["PRIORITY"], entry["MESSAGE"]) == ("6", "real message")


def test_it_writes_readable_stderr_lines_when_not_under_journald(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("info", journal=False)
    log_event(
        logging.getLogger("t"),
        EventType.PROBE_FAILED,
        "ssh banner missing (timeout 5s)",
        severity=Severity.WARNING,
        node="spark-1",
        probe=ProbeKind.SSH,
        failure=FailureKind.NO_BANNER,
        detail="took 5.0 s",
    )
    logging.getLogger("t").info("plain")
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING node=spark-1 probe=ssh failure=no_banner "
        r'event=probe_failed detail="took 5.0 s"  ssh banner missing \(timeout 5s\)',
        lines[0],
    ), lines[0]
    assert re.fullmatch(r"\S+Z INFO  plain", lines[1]), lines[1]


def test_a_missing_journal_socket_falls_back_to_stderr_without_raising(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", journal=True, socket_path=str(tmp_path / "no-such-socket"))
    log_event(
        logging.getLogger("t"),
        EventType.GAVE_UP,
        "giving up on spark-1",
        severity=Severity.CRITICAL,
        node="spark-1",
    )
    # "<2>" lets journald's stream parser keep the priority if stderr is a journal stream.
    assert (
        capsys.readouterr().err == "<2> CRITICAL node=spark-1 event=gave_up  giving up on spark-1\n"
    )


def test_a_full_journal_socket_never_blocks_logging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A receiver that never reads: its queue fills up like a stalled journald's.
    path = str(tmp_path / "stalled.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stalled:
        stalled.bind(path)
        setup_logging("info", journal=True, socket_path=path)
        logger = logging.getLogger("t")
        started = time.monotonic()
        for i in range(2000):
            logger.info("record %d", i)
        elapsed = time.monotonic() - started
        err = capsys.readouterr().err.splitlines()
    assert elapsed < 2.0
    assert err, "once the queue is full, records must go to stderr"
    assert err[-1] == "<6> INFO  record 1999"


def test_auto_mode_uses_the_journal_only_when_journal_stream_is_our_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    setup_logging("info", socket_path="/some/journal.sock")
    assert our_handler().socket_path == "/some/journal.sock"
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")  # stderr redirected
    setup_logging("info")
    assert our_handler().socket_path is None
    monkeypatch.delenv("JOURNAL_STREAM")
    setup_logging("debug")
    assert our_handler().socket_path is None
    assert len([h for h in logging.getLogger().handlers if isinstance(h, StructuredHandler)]) == 1
    assert logging.getLogger().level == logging.DEBUG


def test_an_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging("loud")


def test_every_event_type_has_its_own_fixed_message_id() -> None:
    assert set(MESSAGE_IDS) == set(EventType)
    assert all(re.fullmatch(r"[0-9a-f]{32}", v) for v in MESSAGE_IDS.values())
    assert len(set(MESSAGE_IDS.values())) == len(MESSAGE_IDS)
