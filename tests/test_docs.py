"""The README says what the code does: its tables are checked against the code itself."""

from __future__ import annotations

from pathlib import Path

from watchdog.cli import _parser
from watchdog.journal import MESSAGE_IDS
from watchdog.sim.scenarios import SCENARIOS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_readme_scenario_table_matches_the_catalogue_the_tests_run() -> None:
    for name, sc in SCENARIOS.items():
        row = next(
            (
                line
                for line in README.splitlines()
                if f"`{name}`" in line and line.startswith(f"| {sc.ref} |")
            ),
            None,
        )
        assert row is not None, f"README has no scenario row for {name}"
        assert sc.happens in row and sc.does in row, f"README row for {name} is stale: {row}"


def test_the_readme_lists_every_journald_message_id() -> None:
    for event, message_id in MESSAGE_IDS.items():
        assert f"| `{event.value}` | `{message_id}` |" in README, event


def test_the_readme_documents_every_command() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in sub.choices:  # type: ignore[union-attr]
        assert f"`{command}" in README, f"README does not mention `{command}`"


def test_the_two_first_commands_are_the_demo_and_the_test_suite() -> None:
    quick = README[README.index("## Quick start") : README.index("### What you just saw")]
    assert "cluster-watchdog demo" in quick and "scripts/test" in quick


def test_the_readme_lists_every_failure_kind_and_probe() -> None:
    from watchdog.model import FailureKind, ProbeKind

    failure_row = next(line for line in README.splitlines() if line.startswith("| `failure` |"))
    probe_row = next(line for line in README.splitlines() if line.startswith("| `probe` |"))
    for kind in FailureKind:
        assert f"`{kind.value}`" in failure_row, f"README's failure list lacks {kind.value}"
    for probe in ProbeKind:
        assert f"`{probe.value}`" in probe_row, f"README's probe list lacks {probe.value}"


def test_the_command_help_is_written_for_users_not_a_module_docstring() -> None:
    text = _parser().format_help()
    assert "entry layer" not in text and "``" not in text, text
    assert "cluster-watchdog demo" in text and "78" in text
