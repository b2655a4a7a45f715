"""cluster-watchdog: keeps a small GPU inference cluster alive without a human.

Note: the import name ``watchdog`` is shared with an unrelated PyPI package; install this
project into its own virtualenv (the systemd unit does).
"""

__version__ = "0.1.0"
