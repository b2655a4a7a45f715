"""Shared test plumbing: the rule for missing real components, and fixture modules.

Under ``CI=true`` a missing real component (sshd, journald, systemd) fails the test; on a
developer machine it is skipped with the reason. Fixtures that start real components live in
``tests/fixtures_*.py`` and are loaded here as plugins.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from watchdog.edge import redact

pytest_plugins = [
    "fixtures_sshd",
    "fixtures_journald",
    "fixtures_systemd",
    "fixtures_sim",
    "fixtures_prometheus",
]


# A test that starts a real component through its fixture carries that component's marker, so
# the fast lane's ``-m "not real_sshd and ..."`` leaves it out without each test repeating it.
_FIXTURE_MARKERS = {"real_sshd": "real_sshd", "journald": "journald", "systemd_ns": "systemd"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in fixtures:
                item.add_marker(marker)


def need(available: bool, what: str) -> None:
    """Fail (under CI=true) or skip (elsewhere) when a real component is missing."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"missing real component under CI=true: {what}", pytrace=False)
    pytest.skip(f"missing real component: {what}")


@pytest.fixture(autouse=True)
def _forget_registered_secrets() -> Iterator[None]:
    """A test that loads a config registers its secrets for redaction; the next starts clean."""
    yield
    redact.forget_all()


@pytest.fixture
def disk_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records, in order, each file fsync, directory fsync and rename the test makes."""
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        calls.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def spy_replace(src: str, dst: str) -> None:
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    return calls
