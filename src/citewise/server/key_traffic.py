"""Requests and 429 answers per key, for the console's Keys view and ``citewise keys list``.

Each request is counted in memory (a dict under a lock: nothing touches the store on the
request's path); a thread started in the app's lifespan flushes the counts every
:data:`FLUSH_SECONDS` — and once more at shutdown — into the store's hourly buckets per key
(:class:`~citewise.storage.base.KeyTrafficStore`), adding to what the other replicas of a
shared store wrote. A flush that fails keeps its counts for the next one: requests never
wait for or fail with the store.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..keys import hour_of, recent_hour, stored_traffic
from ..secrets import redact_url
from ..storage import Storage

log = logging.getLogger("citewise.server")

FLUSH_SECONDS = 5.0
# A failing flush warns at most this often (it is retried every FLUSH_SECONDS).
WARN_EVERY_SECONDS = 60.0


@dataclass
class Traffic:
    requests: int = 0
    rate_limited: int = 0
    last_seen: float | None = None

    def add(self, other: Traffic) -> None:
        self.requests += other.requests
        self.rate_limited += other.rate_limited
        if other.last_seen is not None:
            self.last_seen = max(self.last_seen or other.last_seen, other.last_seen)


class KeyTraffic:
    """Requests and 429 answers per key name: counted here, kept in the store."""

    def __init__(self, store: Storage | None = None, interval: float = FLUSH_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._pending: dict[tuple[str, int], Traffic] = {}  # (key, hour) -> not yet stored
        self._lock = threading.Lock()  # guards _pending: held for a dict update only
        # Held through a whole flush, and by readers adding the pending counts to the
        # store's, so that counts being written are never seen twice (or not at all).
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._started = False
        self._warned = 0.0
        self._thread = threading.Thread(target=self._run, name="citewise-key-traffic", daemon=True)

    def record(self, key: str, status: int, moment: float | None = None) -> None:
        moment = time.time() if moment is None else moment
        with self._lock:
            seen = self._pending.setdefault((key, hour_of(moment)), Traffic())
            seen.requests += 1
            seen.rate_limited += status == 429
            seen.last_seen = moment if seen.last_seen is None else max(seen.last_seen, moment)

    def pending(self) -> dict[tuple[str, int], Traffic]:
        """A copy of the counts not stored yet, per (key name, hour)."""
        with self._lock:
            return {
                k: Traffic(t.requests, t.rate_limited, t.last_seen)
                for k, t in self._pending.items()
            }

    # -- writing ---------------------------------------------------------------------

    def start(self) -> None:
        """Start flushing (once: a second lifespan of the same app, or one after
        :meth:`close`, starts nothing)."""
        with self._lock:
            if self._started or self._stop.is_set() or self.store is None:
                return
            self._started = True
        self._thread.start()

    def flush(self) -> bool:
        """Add the pending counts to the store; False (the counts kept for the next
        flush, a warning logged) when the store fails."""
        if self.store is None:
            return False
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return True
            rows = [
                (key, hour, t.requests, t.rate_limited, t.last_seen or float(hour))
                for (key, hour), t in batch.items()
            ]
            try:
                self.store.add_key_traffic(rows)
            except Exception as exc:  # the store is down: keep the counts, try again later
                with self._lock:
                    for slot, counted in batch.items():
                        batch_of = self._pending.setdefault(slot, Traffic())
                        batch_of.add(counted)
                self._warn(exc, len(batch))
                return False
        return True

    def _warn(self, exc: Exception, buckets: int) -> None:
        clock = time.monotonic()
        if self._warned and clock - self._warned < WARN_EVERY_SECONDS:
            log.debug("key traffic flush failed again: %s", type(exc).__name__)
            return
        self._warned = clock
        log.warning(
            "could not store requests per key (%d hourly counts kept for the next try): %s",
            buckets,
            redact_url(f"{type(exc).__name__}: {exc}"),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()  # it never raises: counting cannot take the server down

    def close(self) -> None:
        """Stop the thread and store what is left (a last try: a store that is down loses
        these counts, as a process killed outright would)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    # -- reading ---------------------------------------------------------------------

    def totals(self, moment: float | None = None) -> dict[str, dict[str, Any]]:
        """Per key name, the store's counts plus this process's pending ones: ``requests``
        and ``rate_limited`` in total and over the last 24 h (``requests_24h``,
        ``rate_limited_24h``), and ``last_seen`` (Unix time or None). Raises what the store
        raises."""
        since = recent_hour(moment)
        with self._flushing:
            out = {} if self.store is None else stored_traffic(self.store, since)
            pending = self.pending()
        for (name, hour), t in pending.items():
            row = out.setdefault(name, empty())
            row["requests"] += t.requests
            row["rate_limited"] += t.rate_limited
            if hour >= since:
                row["requests_24h"] += t.requests
                row["rate_limited_24h"] += t.rate_limited
            if t.last_seen is not None:
                row["last_seen"] = max(row["last_seen"] or t.last_seen, t.last_seen)
        return out


def empty() -> dict[str, Any]:
    return {
        "requests": 0,
        "rate_limited": 0,
        "requests_24h": 0,
        "rate_limited_24h": 0,
        "last_seen": None,
    }
