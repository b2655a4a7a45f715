"""The subcommands that read the config or the state and report, each a function of its
parsed arguments returning an exit code: ``run``, ``check``, ``check-config``, ``status``,
``history``, ``alert-test``, ``demo``, ``sim``. Also where an operator's shell finds the
daemon's state directory. The parser in :mod:`watchdog.commands.cli` dispatches here; the
operator requests (``pause``, ``resume``, ``clear``, ``cycle``) are in
:mod:`watchdog.commands.operator_requests`. Heavy modules are imported late, so ``check-config``
stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from watchdog.config import Config, load_config
from watchdog.core.errors import ControlError

EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
DEFAULT_CONFIG = "/etc/cluster-watchdog/config.yaml"
SYSTEM_STATE_DIR = Path("/var/lib/cluster-watchdog")


def cmd_run(args: argparse.Namespace) -> int:
    from watchdog.service.daemon import Daemon  # import late: `check-config` stays light

    return asyncio.run(Daemon(args.config, dry_run=args.dry_run).serve())


def cmd_check(args: argparse.Namespace) -> int:
    from watchdog.commands.check import render_json, render_table, run_check

    cfg = load_config(args.config)
    if args.node is not None:
        require_node(cfg, args.node)
    rows = asyncio.run(run_check(cfg, node=args.node))
    print(render_json(rows) if args.json else render_table(rows))
    return EX_OK if all(r.ok for r in rows) else EX_FAIL


def cmd_check_config(args: argparse.Namespace) -> int:
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


def cmd_status(args: argparse.Namespace) -> int:
    from watchdog.commands.status import read_status, render_status

    cfg = load_config(args.config)
    report = read_status(cfg, state_dir(cfg), now=time.time())
    print(json.dumps(report, indent=2) if args.json else render_status(report))
    return EX_OK


def cmd_history(args: argparse.Namespace) -> int:
    from watchdog.core import incidents
    from watchdog.state import history

    cfg = load_config(args.config)
    now = time.time()
    found = incidents.incidents(history.read(state_dir(cfg)))
    rows = incidents.select(found, node=args.node, since=args.since, now=now)
    print(incidents.render_json(rows, now) if args.json else incidents.render_table(rows, now))
    return EX_OK


def require_node(cfg: Config, node: str) -> None:
    names = [n.name for _, n in cfg.nodes()]
    if node not in names:
        raise ControlError(f"unknown node {node!r}; configured: {', '.join(names)}")


def cmd_alert_test(args: argparse.Namespace) -> int:
    from watchdog.commands.alert_test import send_test_alerts

    cfg = load_config(args.config)
    return EX_OK if asyncio.run(send_test_alerts(cfg)) else EX_FAIL


def cmd_demo(args: argparse.Namespace) -> int:
    from watchdog.sim.demo import run_demo

    return run_demo(
        scenario=args.scenario,
        speed=args.speed,
        list_only=args.list,
        vllm_version=args.vllm_version,
    )


def cmd_sim(args: argparse.Namespace) -> int:
    from watchdog.sim.standalone import run_sim

    return run_sim(
        nodes=args.nodes, host=args.host, output=args.output, vllm_version=args.vllm_version
    )
