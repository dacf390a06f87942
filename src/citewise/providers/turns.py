"""Turns at a model that serves one request at a time, shared fairly between callers.

A plain lock hands the model to whichever waiting thread the OS wakes, so one API key
that sends twenty requests at once holds nineteen places ahead of a key that sends one.
Here waiters queue per caller and callers take turns round-robin: a caller's second
request waits until every other waiting caller has had one turn.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager


class Abandoned(Exception):
    """The reader left while the request waited: it leaves the line without running."""


class QueueFull(Exception):
    """Too many requests wait already: this one is refused without waiting."""


_reader = threading.local()


def reader_left() -> bool:
    """Whether the reader of this thread's request has gone (see reader_gone_when)."""
    gone: threading.Event | None = getattr(_reader, "gone", None)
    return gone is not None and gone.is_set()


@contextmanager
def reader_gone_when(gone: threading.Event) -> Iterator[None]:
    """Within this block (on this thread), a wait for a turn ends with :class:`Abandoned`
    as soon as ``gone`` is set: the router sets it when its reader leaves or times out."""
    previous = getattr(_reader, "gone", None)
    _reader.gone = gone
    try:
        yield
    finally:
        _reader.gone = previous


class FairTurns:
    """One holder at a time; waiting callers served round-robin, each one's requests in
    the order they came."""

    def __init__(self, max_waiting: int | None = None) -> None:
        # Beyond this many waiting requests a new one is refused at once (QueueFull): each
        # waiter holds a server worker thread, and a pool full of waiters would stall
        # every other route.
        self.max_waiting = max_waiting
        self._condition = threading.Condition()
        self._busy = False
        # caller -> its waiting tickets, oldest first; the first caller is served next.
        self._waiting: OrderedDict[str, deque[object]] = OrderedDict()
        self._next: object | None = None  # the ticket whose turn it is

    @contextmanager
    def turn(self, caller: str) -> Iterator[None]:
        """Blocks until ``caller``'s turn, then holds the model until the block ends."""
        ticket = object()
        gone: threading.Event | None = getattr(_reader, "gone", None)
        with self._condition:
            if self.max_waiting is not None and self._count() >= self.max_waiting:
                raise QueueFull(f"{self._count()} requests are already waiting")
            self._waiting.setdefault(caller, deque()).append(ticket)
            self._hand_over()
            try:
                while self._next is not ticket:
                    if gone is not None and gone.is_set():
                        raise Abandoned("the reader left while the request waited its turn")
                    # Woken by every hand-over; a reader that leaves is noticed within 0.1 s.
                    self._condition.wait(0.1 if gone is not None else None)
            except BaseException:  # Abandoned, or Ctrl-C in a wait: never strand the model
                if self._next is ticket:
                    self._next, self._busy = None, False
                    self._hand_over()
                else:
                    self._leave(caller, ticket)
                raise
            self._next = None
        try:
            yield
        finally:
            with self._condition:
                self._busy = False
                self._hand_over()

    def busy(self) -> bool:
        with self._condition:
            return self._busy

    def waiting(self) -> int:
        with self._condition:
            return self._count()

    def _count(self) -> int:
        return sum(len(tickets) for tickets in self._waiting.values())

    def _leave(self, caller: str, ticket: object) -> None:
        tickets = self._waiting.get(caller)
        if tickets is not None:
            tickets.remove(ticket)
            if not tickets:
                del self._waiting[caller]

    def _hand_over(self) -> None:
        """Gives a free model to the first caller in line; that caller goes to the back."""
        if self._busy or not self._waiting:
            return
        caller, tickets = next(iter(self._waiting.items()))
        self._next = tickets.popleft()
        del self._waiting[caller]
        if tickets:
            self._waiting[caller] = tickets  # back of the line, behind every other caller
        self._busy = True
        self._condition.notify_all()
