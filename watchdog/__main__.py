"""``python -m watchdog``: the same entry point as the ``cluster-watchdog`` command."""

from watchdog.commands.cli import main

raise SystemExit(main())
