"""The ``cluster-watchdog`` command line (entry layer): the only place that exits.

Exit codes: 0 ok; 1 ``check`` found failures or an operator request was refused; 2 usage;
78 (EX_CONFIG) bad config — no traceback, the key's path and the fix on stderr. The systemd
unit sets ``RestartPreventExitStatus=78`` so a broken config does not restart-loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from watchdog import __version__
from watchdog.config import Config, load_config, parse_duration
from watchdog.core import lifecycle
from watchdog.core.errors import ConfigError, ControlError, StoreError
from watchdog.edge.redact import RedactingStream
from watchdog.state import control
from watchdog.state.persist import from_persisted, to_persisted
from watchdog.state.store import PersistedState, StateUnreadable, Store

EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
RESPONSE_TIMEOUT = 15.0  # how long an operator command waits for the running daemon's answer
DEFAULT_CONFIG = "/etc/cluster-watchdog/config.yaml"
SYSTEM_STATE_DIR = Path("/var/lib/cluster-watchdog")


def main(argv: Sequence[str] | None = None) -> int:
    # Every line this process prints passes the one redaction step (and stays encodable).
    out, err = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(out)
    sys.stderr = RedactingStream(err)
    try:
        return _main(argv)
    except Exception:  # a bug: its traceback goes through the redacting stream too
        traceback.print_exc()
        return EX_FAIL
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"cluster-watchdog: config error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except (ControlError, StoreError) as exc:
        print(f"cluster-watchdog: {exc}", file=sys.stderr)
        return EX_FAIL
    except KeyboardInterrupt:
        return 130


# The simulated vLLM speaks one version's shapes: 0.10, 0.20, or 0.21+ (as 0.33, the newest).
_VLLM_VERSION = ("--vllm-version",)
_VLLM_VERSION_OPTS = {
    "default": "0.33",
    "metavar": "X.Y",
    "help": "which vLLM the simulated endpoint speaks like: 0.10, 0.20 or 0.21+ (default 0.33)",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cluster-watchdog",
        description=(
            "Keeps a GPU inference cluster serving: probes each node's sshd and the vLLM "
            "endpoint, and power-cycles a node through its smart plug only when it is truly "
            "wedged. Start with 'cluster-watchdog demo', then 'check' against your cluster."
        ),
        epilog=(
            "Exit codes: 0 ok; 1 check found failures or a request was refused; 2 usage; "
            "78 bad config (the key's path and the fix are printed)."
        ),
    )
    p.add_argument("--version", action="version", version=f"cluster-watchdog {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    default_cfg = os.environ.get("CLUSTER_WATCHDOG_CONFIG", DEFAULT_CONFIG)

    def cmd(name: str, func: object, help_: str, config: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        if config:
            sp.add_argument(
                "-c",
                "--config",
                default=default_cfg,
                type=Path,
                help=f"config file (default {default_cfg})",
            )
        return sp

    sp = cmd("run", _run, "run the watchdog in the foreground (the systemd unit's command)")
    sp.add_argument(
        "--dry-run", action="store_true", help="decide and log everything, never switch a plug"
    )
    sp = cmd("check", _check, "probe every node and endpoint once and report")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--node", help="only this node (and its cluster's endpoint)")
    sp = cmd("check-config", _check_config, "validate a config file and exit", config=False)
    sp.add_argument("file", nargs="?", type=Path, help="config file")
    sp.add_argument("-c", "--config", type=Path, default=None, help=argparse.SUPPRESS)
    sp = cmd("status", _status, "show each node's class, failures, budget, latch, pause")
    sp.add_argument("--json", action="store_true")
    sp = cmd("history", _history, "list incidents: condition, start, end, actions, pages")
    sp.add_argument("node", nargs="?", help="only this node (or 'watchdog' for fleet-level)")
    sp.add_argument("--since", type=_duration, default=86400.0, help="how far back (default 24h)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = cmd("pause", _op, "maintenance: probe and log only, no action, no page")
    sp.add_argument("node")
    sp.add_argument(
        "--for", dest="duration", type=_duration, help="e.g. 2h (default: until resumed)"
    )
    sp = cmd("resume", _op, "end maintenance")
    sp.add_argument("node")
    sp = cmd("clear", _op, "un-latch a node the watchdog gave up on, resetting its budget")
    sp.add_argument("node")
    sp = cmd("cycle", _op, "power-cycle a node now, through the daemon (counts in the budget)")
    sp.add_argument("node")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp = cmd("alert-test", _alert_test, "send a test trigger and resolve to every channel")
    sp = cmd(
        "demo", _demo, "a simulated cluster where a node wedges and is recovered", config=False
    )
    sp.add_argument("--scenario", default="wedge", help="which scenario to replay")
    sp.add_argument("--speed", type=float, default=1.0, help="timing scale (2 = twice as fast)")
    sp.add_argument("--list", action="store_true", help="list the scenarios")
    sp.add_argument(*_VLLM_VERSION, **_VLLM_VERSION_OPTS)  # type: ignore[arg-type]
    sp = cmd("sim", _sim, "run the simulated cluster standalone and print its config", config=False)
    sp.add_argument("--nodes", type=int, default=2)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("-o", "--output", type=Path, help="also write a whole config file here")
    sp.add_argument(*_VLLM_VERSION, **_VLLM_VERSION_OPTS)  # type: ignore[arg-type]
    return p


# ---------------------------------------------------------------------------- commands
def _run(args: argparse.Namespace) -> int:
    from watchdog.service.daemon import Daemon  # import late: `check-config` stays light

    return asyncio.run(Daemon(args.config, dry_run=args.dry_run).serve())


def _check(args: argparse.Namespace) -> int:
    from watchdog.commands.check import render_json, render_table, run_check

    cfg = load_config(args.config)
    if args.node is not None:
        _require_node(cfg, args.node)
    rows = asyncio.run(run_check(cfg, node=args.node))
    print(render_json(rows) if args.json else render_table(rows))
    return EX_OK if all(r.ok for r in rows) else EX_FAIL


def _check_config(args: argparse.Namespace) -> int:
    path = (
        args.file or args.config or Path(os.environ.get("CLUSTER_WATCHDOG_CONFIG", DEFAULT_CONFIG))
    )
    cfg = load_config(path)
    nodes = len(cfg.nodes())
    channels = len(cfg.alerts.channels)
    print(
        f"{path}: ok ({len(cfg.clusters)} cluster(s), {nodes} node(s), "
        f"{channels} alert channel(s){', dry run' if cfg.watchdog.dry_run else ''})"
    )
    return EX_OK


def state_dir(cfg: Config) -> Path:
    """Where the daemon keeps state, seen from an operator's shell."""
    if cfg.watchdog.state_dir or os.environ.get("STATE_DIRECTORY"):
        return cfg.state_path()
    # Under systemd the daemon gets STATE_DIRECTORY=/var/lib/cluster-watchdog; a shell doesn't.
    return SYSTEM_STATE_DIR if SYSTEM_STATE_DIR.is_dir() else cfg.state_path()


def _status(args: argparse.Namespace) -> int:
    from watchdog.commands.status import read_status, render_status

    cfg = load_config(args.config)
    report = read_status(cfg, state_dir(cfg), now=time.time())
    print(json.dumps(report, indent=2) if args.json else render_status(report))
    return EX_OK


def _history(args: argparse.Namespace) -> int:
    from watchdog.core import incidents
    from watchdog.state import history

    cfg = load_config(args.config)
    now = time.time()
    found = incidents.incidents(history.read(state_dir(cfg)))
    rows = incidents.select(found, node=args.node, since=args.since, now=now)
    print(incidents.render_json(rows, now) if args.json else incidents.render_table(rows, now))
    return EX_OK


def _op(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    _require_node(cfg, args.node)
    op = control.Op(args.command)
    now = time.time()
    duration = getattr(args, "duration", None)
    until = now + duration if duration is not None else None
    if op is control.Op.CYCLE and not args.yes and not _confirm(cfg, args.node):
        print("not confirmed; nothing done")
        return EX_FAIL
    directory = state_dir(cfg)
    with control.state_lock(directory):
        pid = control.daemon_running(directory)
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


def _duration(text: str) -> float:
    """argparse type for ``--for``: a bad duration is a usage error, not a traceback."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be longer than zero")
    return seconds


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


def _require_node(cfg: Config, node: str) -> None:
    names = [n.name for _, n in cfg.nodes()]
    if node not in names:
        raise ControlError(f"unknown node {node!r}; configured: {', '.join(names)}")


def _alert_test(args: argparse.Namespace) -> int:
    from watchdog.commands.alert_test import send_test_alerts

    cfg = load_config(args.config)
    return EX_OK if asyncio.run(send_test_alerts(cfg)) else EX_FAIL


def _demo(args: argparse.Namespace) -> int:
    from watchdog.sim.demo import run_demo

    return run_demo(
        scenario=args.scenario,
        speed=args.speed,
        list_only=args.list,
        vllm_version=args.vllm_version,
    )


def _sim(args: argparse.Namespace) -> int:
    from watchdog.sim.standalone import run_sim

    return run_sim(
        nodes=args.nodes, host=args.host, output=args.output, vllm_version=args.vllm_version
    )
