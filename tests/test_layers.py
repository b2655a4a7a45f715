"""The layer rule's part that import contracts cannot state: only the entry layer exits.

``lint-imports`` (run by ``scripts/test``) checks which layer imports which; this checks that
no module below ``watchdog/commands/`` ends the process (``sys.exit``, ``SystemExit``,
``os._exit``, ``exit()``/``quit()``): a daemon that must never die on bad input decides that
in one place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import watchdog

PACKAGE = Path(watchdog.__file__).parent
ENTRY = {PACKAGE / "__main__.py", *(PACKAGE / "commands").glob("*.py")}


def exits(tree: ast.AST) -> list[int]:
    found = []
    for node in ast.walk(tree):
        if (
            (isinstance(node, ast.Name) and node.id == "SystemExit")
            or (
                isinstance(node, ast.Attribute)
                and node.attr in {"exit", "_exit"}
                and isinstance(node.value, ast.Name)
                and node.value.id in {"sys", "os"}
            )
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"exit", "quit"}
            )
        ):
            found.append(node.lineno)
    return found


def test_only_the_entry_layer_ends_the_process() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in ENTRY and (lines := exits(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_check_sees_an_exit() -> None:
    assert exits(ast.parse("import sys\nsys.exit(1)\n")) == [2]
    assert exits(ast.parse("raise SystemExit(2)\n")) == [1]
    assert exits(ast.parse("import os\nos._exit(3)\n")) == [2]
