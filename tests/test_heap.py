"""The daemon's heap after start-up: what is alive then is out of the collector's scans."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from watchdog.service.daemon import settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # give the test process its heap back


def test_what_is_alive_at_start_up_is_frozen_and_a_reload_gives_its_cycles_back() -> None:
    old = Node()
    ref = weakref.ref(old)
    settle_heap()  # start-up: ``old`` is alive, so it is frozen
    assert gc.get_freeze_count() > 0
    del old
    gc.collect()
    assert ref() is not None  # frozen: the cyclic collector does not look at it
    settle_heap(again=True)  # a reload: what was frozen is given back, then collected
    assert ref() is None
    assert gc.get_freeze_count() > 0  # and what is alive now is frozen again


def test_garbage_made_before_start_up_is_collected_not_frozen() -> None:
    dead = Node()
    ref = weakref.ref(dead)
    del dead
    settle_heap()
    assert ref() is None
