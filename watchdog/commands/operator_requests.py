"""The operator requests ``pause``, ``resume``, ``clear`` and ``cycle``, seen from the shell.

docs/design.md, "Operator requests": with a daemon running, the request goes through its
inbox on disk (:mod:`watchdog.state.control`) and the command waits for the answer,
withdrawing the request if none comes; with none running, it is applied to the state file
directly under the state lock (a power cycle always needs the daemon). ``cycle`` asks for
the node's name at a terminal unless ``--yes`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from watchdog.commands.handlers import EX_FAIL, EX_OK, require_node, state_dir
from watchdog.config import Config, load_config
from watchdog.core import lifecycle
from watchdog.core.errors import ControlError
from watchdog.state import control, locks
from watchdog.state.persist import from_persisted, to_persisted
from watchdog.state.store import PersistedState, StateUnreadable, Store

RESPONSE_TIMEOUT = 15.0  # how long an operator command waits for the running daemon's answer


def cmd_op(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    require_node(cfg, args.node)
    op = control.Op(args.command)
    now = time.time()
    duration = getattr(args, "duration", None)
    until = now + duration if duration is not None else None
    if op is control.Op.CYCLE and not args.yes and not _confirm(cfg, args.node):
        print("not confirmed; nothing done")
        return EX_FAIL
    directory = state_dir(cfg)
    with locks.state_lock(directory):
        pid = locks.daemon_running(directory)
        if pid is None:
            if op.needs_daemon:
                raise ControlError(
                    "no cluster-watchdog daemon is running for this state "
                    f"directory ({directory}); a power cycle must go through "
                    "the daemon's procedure"
                )
            return _edit_offline(cfg, directory, op, args.node, until, now)
    req = control.new_request(op, args.node, until=until, now=now)
    control.submit(directory, req)
    resp = asyncio.run(control.wait_response(directory, req.id, timeout=RESPONSE_TIMEOUT))
    if resp is None:
        return _unanswered(directory, req, pid)
    if not resp.ok:
        print(f"refused: {resp.message}", file=sys.stderr)
        return EX_FAIL
    print(resp.message)
    return EX_OK


def _unanswered(directory: Path, req: control.Request, pid: int | None) -> int:
    """The daemon did not answer: withdraw the request so it cannot run later, unasked."""
    pending = directory / control.REQUESTS / f"{req.id}.json"
    try:
        pending.unlink()
    except FileNotFoundError:
        # Taken but not answered: the daemon may have acted on it and died before answering.
        fate = "it took the request but never answered; check `status` and the journal"
    except OSError as exc:
        fate = f"could not withdraw the request ({pending}: {exc.strerror}); it may still run"
    else:
        fate = "the request was withdrawn and will not run"
    print(
        f"the daemon (pid {pid}) did not answer within {RESPONSE_TIMEOUT:g} s: {fate}",
        file=sys.stderr,
    )
    return EX_FAIL


def _edit_offline(
    cfg: Config, directory: Path, op: control.Op, node: str, until: float | None, now: float
) -> int:
    """No daemon runs: apply the request to the state file directly (under the state lock)."""
    from watchdog.engine.inbox import apply_request  # late: the other commands stay light

    store = Store(directory)
    try:
        # The same strict reader the daemon uses, without its move-aside: replacing a state
        # we could not read would silently drop every latch and budget. Only the daemon sets
        # such a file aside, because it also pages.
        state = store.read() or PersistedState()
    except StateUnreadable as exc:
        raise ControlError(
            f"{exc}; nothing changed. Start the daemon (it sets the file aside and "
            "pages) or repair the file, then retry"
        ) from None
    members = {n.name: c.name for c, n in cfg.nodes()}
    fleet = from_persisted(state, members, now)
    try:
        fleet, _ = apply_request(fleet, op, node, until=until, now=now)
    except lifecycle.Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EX_FAIL
    store.save(to_persisted(fleet, state))
    print(f"{node}: {op.value} recorded (no daemon running; it applies at the next start)")
    return EX_OK


def _confirm(cfg: Config, node: str) -> bool:
    if not sys.stdin.isatty():
        print("refusing to power-cycle without confirmation: pass --yes", file=sys.stderr)
        return False
    off = cfg.policy.off_time
    try:
        answer = input(
            f"Power-cycle {node} now? Its power is cut for {off:.0f}s. "
            "Type the node name to confirm: "
        )
    except EOFError:  # Ctrl-D at the prompt is a "no", not a traceback
        print(file=sys.stderr)
        return False
    return answer.strip() == node
