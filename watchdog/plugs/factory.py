"""Builds the right :class:`~watchdog.plugs.base.Plug` for a node's plug configuration.

The composition root calls :func:`make_plug` and hands the result to orchestration, which
only ever sees the :class:`Plug` interface. A Kasa plug speaking the legacy protocol without
keys (encryption ``xor``, the default without credentials) gets the native driver
(:mod:`.kasa_xor`); KLAP and AES Kasa plugs and every Tapo plug go through python-kasa
(:mod:`.kasa`), imported only when such a plug is built: python-kasa brings every device
family, aiohttp and cryptography, about 20 MiB a daemon with only legacy plugs never pays.
``dry_run`` (the global switch) wraps the real driver, so a dry run still reads the device
and proves it answers.
"""

from __future__ import annotations

from watchdog.config import Plug as PlugConfig
from watchdog.config import PlugEncryption, PlugType
from watchdog.plugs.base import Plug
from watchdog.plugs.dryrun import DryRunPlug
from watchdog.plugs.kasa_xor import XorKasaPlug


def make_plug(cfg: PlugConfig, *, label: str, dry_run: bool = False) -> Plug:
    """The driver for ``cfg``; raises ConfigError for a combination no device speaks."""
    if cfg.type is PlugType.DRY_RUN:
        return DryRunPlug(None, label)
    real: Plug
    if cfg.type is PlugType.KASA and cfg.effective_encryption is PlugEncryption.XOR:
        real = XorKasaPlug(cfg, label=label)
    else:
        from watchdog.plugs.kasa import KasaPlug  # python-kasa: only when a plug needs it

        real = KasaPlug(cfg, label=label)
    return DryRunPlug(real, label) if dry_run else real
