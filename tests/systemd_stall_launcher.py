"""Test-only launcher for tests/test_systemd_daemon.py: the real ``cluster-watchdog`` whose event
loop can be made to stall with SIGUSR1.

    python tests/systemd_stall_launcher.py run -c CONFIG

Installs one test-only patch, then hands the command line to the real
:func:`watchdog.commands.cli.main`. SIGUSR1 only sets a flag; the next run of the engine's scheduler
tick (``Jobs.job_tick``, every second at most) then blocks the whole event loop with
``time.sleep`` — the way a CPU-bound bug or a blocking call in a coroutine would — so the
daemon's own ``WATCHDOG=1`` pings stop and systemd must kill and restart it.

A signal rather than a trigger file (as ``tests/stall_launcher.py`` uses): under
``PrivateTmp=`` and ``ProtectSystem=strict`` the unit and the test share no path the unit may
write, and a flag dies with its process, so the restarted daemon runs normally — no race
between the restart and the test removing a file. ``systemctl kill -s SIGUSR1
--kill-who=main`` always reaches the main PID. The product has no hook for this on purpose.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from watchdog.commands import cli
from watchdog.engine.jobs import Jobs

STALL_SECONDS = 30.0  # bounded: a watchdog that never fires must not hang the test run forever
_armed = False


def _arm(signum: int, frame: FrameType | None) -> None:
    global _armed
    _armed = True


def install_stall() -> None:
    """Wrap ``Jobs.job_tick`` so that, once armed, it blocks the event loop."""
    original = Jobs.job_tick

    async def stalling_tick(self: Jobs) -> None:
        if _armed:
            print("stalling the event loop on purpose (SIGUSR1)", file=sys.stderr, flush=True)
            time.sleep(STALL_SECONDS)  # blocking on purpose: nothing else in the loop may run
        await original(self)

    setattr(Jobs, "job_tick", stalling_tick)  # noqa: B010  # mypy refuses method assignment
    signal.signal(signal.SIGUSR1, _arm)


if __name__ == "__main__":
    install_stall()
    sys.exit(cli.main(sys.argv[1:]))
