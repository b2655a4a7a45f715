"""Test-only launcher for scenario S12: ``cluster-watchdog`` with an event loop that can stall.

    python tests/stall_launcher.py TRIGGER MARKER run -c CONFIG

Installs one test-only patch, then hands the rest of the command line to the real
:func:`watchdog.commands.cli.main`: while the file ``TRIGGER`` exists, the engine's scheduler tick
blocks the whole event loop with ``time.sleep`` — the way a CPU-bound bug or a blocking call
in a coroutine would — after writing ``MARKER`` so the test knows the stall has begun. The
product has no hook for this on purpose; the patch lives here, in the tests.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from watchdog.commands import cli
from watchdog.engine.jobs import Jobs

STALL_LIMIT = 30.0  # a forgotten trigger must not block a test run forever
POLL = 0.02


def install_stall(trigger: Path, marker: Path) -> None:
    """Wrap ``Jobs.job_tick`` so it blocks the loop while ``trigger`` exists."""
    original = Jobs.job_tick

    async def stalling_tick(self: Jobs) -> None:
        if trigger.exists():
            marker.write_text(f"{time.time()}\n")
            deadline = time.monotonic() + STALL_LIMIT
            while trigger.exists() and time.monotonic() < deadline:
                time.sleep(POLL)  # blocking on purpose: nothing else in the loop may run
        await original(self)

    setattr(Jobs, "job_tick", stalling_tick)  # noqa: B010  # mypy refuses method assignment


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: stall_launcher.py TRIGGER MARKER COMMAND...", file=sys.stderr)
        return 2
    install_stall(Path(argv[0]), Path(argv[1]))
    return cli.main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
