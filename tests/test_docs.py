"""The README says what the code does: its tables are checked against the code itself."""

from __future__ import annotations

from pathlib import Path

from watchdog.commands.cli import _parser
from watchdog.sim.scenarios import SCENARIOS
from watchdog.telemetry.journal import MESSAGE_IDS

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
    from watchdog.core.model import FailureKind, ProbeKind

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


DESIGN = (Path(__file__).resolve().parent.parent / "docs" / "design.md").read_text(encoding="utf-8")


def test_every_citation_of_the_design_names_one_of_its_sections() -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    headings = {line.lstrip("#").strip() for line in DESIGN.splitlines() if line.startswith("#")}
    cited: dict[str, str] = {}
    sources = ("watchdog/**/*.py", "tests/*.py", "scripts/*", "*.md", "*/README.md", "config/*")
    for path in sorted({p for pattern in sources for p in root.glob(pattern) if p.is_file()}):
        if path.name == "test_docs.py":
            continue
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r'docs/design\.md,\s+"([^"]+)"', text):
            cited[m.group(1)] = str(path.relative_to(root))
    assert cited, "nothing cites docs/design.md"
    missing = {title: where for title, where in cited.items() if title not in headings}
    assert not missing, f"cited sections docs/design.md does not have: {missing}"


def test_the_design_scenario_catalogue_lists_every_scenario_the_tests_run() -> None:
    catalogue = DESIGN[DESIGN.index("## Scenario catalogue") :]
    for name, sc in SCENARIOS.items():
        assert f"| {sc.ref} |" in catalogue, f"docs/design.md lacks {sc.ref} ({name})"
