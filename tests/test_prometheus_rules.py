"""The shipped alert rules, checked and unit-tested by Debian's real ``promtool``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

RULES = Path(__file__).parent.parent / "contrib" / "prometheus"


def run(promtool: str, *args: str, cwd: Path = RULES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_finds_the_rules_valid(promtool: str) -> None:
    done = run(promtool, "check", "rules", "cluster-watchdog.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_the_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    done = run(promtool, "test", "rules", "cluster-watchdog.rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_fail_when_a_rule_is_broken(promtool: str, tmp_path: Path) -> None:
    # The given-up rule made to wait 10 minutes: the test expecting it at once must fail.
    shutil.copy(RULES / "cluster-watchdog.rules.test.yml", tmp_path)
    rules = (RULES / "cluster-watchdog.rules.yml").read_text()
    broken = rules.replace(
        'expr: cluster_watchdog_node_class{class="given_up"} == 1\n',
        'expr: cluster_watchdog_node_class{class="given_up"} == 1\n        for: 10m\n',
    )
    assert broken != rules
    (tmp_path / "cluster-watchdog.rules.yml").write_text(broken)
    done = run(promtool, "test", "rules", "cluster-watchdog.rules.test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "ClusterWatchdogNodeGivenUp" in done.stdout + done.stderr
