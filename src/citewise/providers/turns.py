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


_reader = threading.local()


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

    def __init__(self) -> None:
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
            self._waiting.setdefault(caller, deque()).append(ticket)
            self._hand_over()
            while self._next is not ticket:
                if gone is not None and gone.is_set():
                    self._leave(caller, ticket)
                    raise Abandoned("the reader left while the request waited for its turn")
                # Woken by every hand-over; a reader that leaves is noticed within 0.1 s.
                self._condition.wait(0.1 if gone is not None else None)
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
