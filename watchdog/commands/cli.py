"""The ``cluster-watchdog`` command line (entry layer): the only place that exits.

Owns the argument parser and the mapping of errors to exit codes; what each subcommand does
is in :mod:`watchdog.commands.handlers` and :mod:`watchdog.commands.operator_requests`.

Exit codes: 0 ok; 1 ``check`` found failures or an operator request was refused; 2 usage;
78 (EX_CONFIG) bad config — no traceback, the key's path and the fix on stderr. The systemd
unit sets ``RestartPreventExitStatus=78`` so a broken config does not restart-loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from watchdog import __version__
from watchdog.commands.handlers import (
    DEFAULT_CONFIG,
    EX_CONFIG,
    EX_FAIL,
    cmd_alert_test,
    cmd_check,
    cmd_check_config,
    cmd_demo,
    cmd_history,
    cmd_run,
    cmd_sim,
    cmd_status,
)
from watchdog.commands.operator_requests import cmd_op
from watchdog.config import parse_duration
from watchdog.core.errors import ConfigError, ControlError, StoreError
from watchdog.edge.redact import RedactingStream


def main(argv: Sequence[str] | None = None) -> int:
    # Every line this process prints passes the one redaction step (and stays encodable).
    out, err = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(out)
    sys.stderr = RedactingStream(err)
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (``| head``): nothing more to say, and nothing to flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return EX_FAIL
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

    sp = cmd("run", cmd_run, "run the watchdog in the foreground (the systemd unit's command)")
    sp.add_argument(
        "--dry-run", action="store_true", help="decide and log everything, never switch a plug"
    )
    sp = cmd("check", cmd_check, "probe every node and endpoint once and report")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--node", help="only this node (and its cluster's endpoint)")
    sp = cmd("check-config", cmd_check_config, "validate a config file and exit", config=False)
    sp.add_argument("file", nargs="?", type=Path, help="config file")
    sp.add_argument("-c", "--config", type=Path, default=None, help=argparse.SUPPRESS)
    sp = cmd("status", cmd_status, "show each node's class, failures, budget, latch, pause")
    sp.add_argument("--json", action="store_true")
    sp = cmd("history", cmd_history, "list incidents: condition, start, end, actions, pages")
    sp.add_argument("node", nargs="?", help="only this node (or 'watchdog' for fleet-level)")
    sp.add_argument("--since", type=_duration, default=86400.0, help="how far back (default 24h)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = cmd("pause", cmd_op, "maintenance: probe and log only, no action, no page")
    sp.add_argument("node")
    sp.add_argument(
        "--for", dest="duration", type=_duration, help="e.g. 2h (default: until resumed)"
    )
    sp = cmd("resume", cmd_op, "end maintenance")
    sp.add_argument("node")
    sp = cmd("clear", cmd_op, "un-latch a node the watchdog gave up on, resetting its budget")
    sp.add_argument("node")
    sp = cmd("cycle", cmd_op, "power-cycle a node now, through the daemon (counts in the budget)")
    sp.add_argument("node")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp = cmd("alert-test", cmd_alert_test, "send a test trigger and resolve to every channel")
    sp = cmd(
        "demo", cmd_demo, "a simulated cluster where a node wedges and is recovered", config=False
    )
    sp.add_argument("--scenario", default="wedge", help="which scenario to replay")
    sp.add_argument("--speed", type=float, default=1.0, help="timing scale (2 = twice as fast)")
    sp.add_argument("--list", action="store_true", help="list the scenarios")
    sp.add_argument(*_VLLM_VERSION, **_VLLM_VERSION_OPTS)  # type: ignore[arg-type]
    sp = cmd(
        "sim", cmd_sim, "run the simulated cluster standalone and print its config", config=False
    )
    sp.add_argument("--nodes", type=int, default=2)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("-o", "--output", type=Path, help="also write a whole config file here")
    sp.add_argument(*_VLLM_VERSION, **_VLLM_VERSION_OPTS)  # type: ignore[arg-type]
    return p


def _duration(text: str) -> float:
    """argparse type for ``--for``: a bad duration is a usage error, not a traceback."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be longer than zero")
    return seconds
