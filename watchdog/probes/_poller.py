"""The probes' own epoll set, watched by the event loop as one file descriptor (adapter layer).

Owns :class:`Poller` and :func:`poller` (one per event loop). The socket probes
(:mod:`watchdog.probes._dial`, :mod:`watchdog.probes.wire_io`) register their sockets here
rather than through ``loop.add_reader``/``add_writer``, which cost a dozen Python calls per
registration; this costs one ``epoll_ctl``.
"""

from __future__ import annotations

import asyncio
import select
import weakref
from collections.abc import Callable

READ_SIZE = 64 * 1024  # one recv() of a probe socket at most


class Poller:
    """The probes' own epoll set, which the event loop watches as one file descriptor.

    asyncio's ``add_reader``/``remove_reader`` cost a dozen Python calls each (handles,
    selector keys, a transport check); a probe socket needs only "call this when it is ready".
    Here each registration is one ``epoll_ctl`` and each ready socket one dict lookup; the loop
    wakes the poller as it would any reader. One per event loop (:func:`poller`). Level
    triggered, like asyncio: a callback that leaves its event pending is called again. A
    callback may still run once after its ``forget`` (an event of the same batch): it must
    check that it still has a socket.
    """

    __slots__ = ("__weakref__", "_callbacks", "_epoll", "buffer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # One read buffer for the loop's sockets: its callbacks run one at a time.
        self.buffer = memoryview(bytearray(READ_SIZE))
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[int], object]] = {}
        loop.add_reader(self._epoll.fileno(), self._ready)  # the loop holds us, not we it

    def watch(self, fd: int, events: int, callback: Callable[[int], object]) -> None:
        """Call ``callback(events)`` whenever ``fd`` is ready for ``events`` (EPOLLIN/OUT)."""
        self._epoll.register(fd, events)
        self._callbacks[fd] = callback

    def change(self, fd: int, events: int, callback: Callable[[int], object]) -> None:
        self._epoll.modify(fd, events)
        self._callbacks[fd] = callback

    def forget(self, fd: int) -> None:
        """Stop watching ``fd``; before it is closed."""
        if self._callbacks.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _ready(self) -> None:
        # Callbacks are looked up before any runs: one may close its socket and another
        # register a new one on the same fd number, which must not get the old socket's event.
        callbacks = self._callbacks
        for callback, events in [(callbacks.get(fd), ev) for fd, ev in self._epoll.poll(0)]:
            if callback is not None:
                callback(events)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = weakref.WeakKeyDictionary()


_last: tuple[weakref.ref[asyncio.AbstractEventLoop], weakref.ref[Poller]] | None = None


def poller() -> Poller:
    """The running loop's :class:`Poller` (created at first use, gone with its loop)."""
    global _last  # a one-entry cache in front of the weak dictionary
    loop = asyncio.get_running_loop()
    if _last is not None and _last[0]() is loop and (found := _last[1]()) is not None:
        return found
    found = _POLLERS.get(loop)
    if found is None:
        found = _POLLERS[loop] = Poller(loop)
    _last = (weakref.ref(loop), weakref.ref(found))
    return found
