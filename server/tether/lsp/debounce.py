"""The server's timers: :class:`Debounce` (saves before their checkpoint, the unsaved-buffer
journal) and :class:`Throttle` (the status notification), over a :class:`Timers` source the
engine's unit tests replace with virtual time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Handle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """A clock and a way to run a callback later, on the event loop's thread."""

    def now(self) -> float: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Handle: ...


class LoopTimers:
    """The running event loop's timers and the monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Handle:
        return asyncio.get_running_loop().call_later(delay, fn)


class Debounce:
    """Calls ``fire`` once things settle: ``delay()`` seconds after the last :meth:`touch`, and
    at the latest ``max_delay()`` seconds after the first touch since it last fired, so a steady
    stream of touches cannot postpone it for ever. Delays are read at each touch (settings may
    change while the server runs)."""

    def __init__(
        self,
        timers: Timers,
        fire: Callable[[], None],
        delay: Callable[[], float],
        max_delay: Callable[[], float],
    ) -> None:
        self._timers = timers
        self._fire = fire
        self._delay = delay
        self._max_delay = max_delay
        self._timer: Handle | None = None
        self._first = 0.0

    @property
    def pending(self) -> bool:
        return self._timer is not None

    def touch(self, restart: bool = True) -> None:
        """Something happened. ``restart=False``: it must not push a pending call back (a cursor
        move, say); it only starts one when none is pending."""
        now = self._timers.now()
        if self._timer is not None:
            if not restart:
                return
            self._timer.cancel()
        else:
            self._first = now
        latest = self._first + self._max_delay()
        self._timer = self._timers.call_later(max(0.0, min(now + self._delay(), latest) - now), self._due)

    def cancel(self) -> bool:
        """Drop the pending call; whether there was one."""
        if self._timer is None:
            return False
        self._timer.cancel()
        self._timer = None
        return True

    def fire_now(self) -> bool:
        """Run the pending call at once; whether there was one."""
        if not self.cancel():
            return False
        self._fire()
        return True

    def _due(self) -> None:
        self._timer = None
        self._fire()


class Throttle:
    """Calls ``send`` at most every ``interval()`` seconds. A request within the interval is
    deferred to its end, never dropped: the deferred call sends the freshest state. ``send``
    returns whether it sent anything (only then does a new interval start)."""

    def __init__(self, timers: Timers, send: Callable[[], bool], interval: Callable[[], float]) -> None:
        self._timers = timers
        self._send = send
        self._interval = interval
        self._timer: Handle | None = None
        self._sent_at = float("-inf")

    def request(self) -> None:
        if self._timer is not None:
            return  # a deferred send is due; it computes the freshest state
        wait = self._sent_at + self._interval() - self._timers.now()
        if wait > 0:
            self._timer = self._timers.call_later(wait, self._due)
            return
        self._run()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        self._run()

    def _run(self) -> None:
        if self._send():
            self._sent_at = self._timers.now()
