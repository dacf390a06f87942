"""Each server process records itself in the store it shares with the others (its name,
host, address, citewise version and schema) and renews ``last_seen`` every
:data:`BEAT_SECONDS` from a thread, so the console's Health view lists every replica of
a PostgreSQL deployment — and one that stopped, until :data:`SHOWN_SECONDS` pass.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from .. import __version__
from ..storage import Storage
from ..storage.sql import now

log = logging.getLogger("citewise.server")

BEAT_SECONDS = 10.0
# A replica not seen for this long is reported as gone (it missed three beats).
ALIVE_SECONDS = 3 * BEAT_SECONDS
# Replicas seen within this are listed (a stopped one stays visible for a while).
SHOWN_SECONDS = 3600.0


class ReplicaBeat:
    """This process's record in the store, renewed while it runs."""

    def __init__(self, store: Storage, replica: str, interval: float = BEAT_SECONDS) -> None:
        self.store = store
        self.replica = replica
        self.host = socket.gethostname()
        self.address = ""  # host:port it serves on, when known (serve() or a request)
        self.started = now()
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._thread = threading.Thread(target=self._run, name="citewise-replica", daemon=True)

    def start(self) -> None:
        """Start beating (once: a second lifespan of the same app, or one after
        :meth:`close`, starts nothing)."""
        with self._lock:
            if self._started or self._stop.is_set():
                return
            self._started = True
        self._thread.start()

    def note_address(self, address: str) -> None:
        """The address it serves on, learnt late (from a request): recorded at once."""
        if address and not self.address:
            self.address = address
            self.beat()

    def beat(self) -> None:
        if self._stop.is_set():  # closed: the store may be closing too; write nothing more
            return
        try:
            schema = self.store.schema_version()[-1]
            self.store.beat_replica(
                self.replica, self.host, self.address, __version__, schema, self.started
            )
        except Exception as exc:  # the store is down: readyz says so; try again next beat
            log.debug("replica heartbeat failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()  # it never raises: a heartbeat cannot take the server down
            if self._stop.wait(self.interval):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def listed(self, shared: bool) -> list[dict[str, Any]]:
        """The replicas to show: every one the store saw lately (``shared``: several
        servers share the store), else this process alone; each with ``alive``,
        ``this`` and ``last_seen`` as ISO 8601."""
        clock = time.time()
        rows = self.store.replicas(clock - SHOWN_SECONDS)
        if not shared:
            rows = [row for row in rows if row["id"] == self.replica]
        if not any(row["id"] == self.replica for row in rows):  # not recorded yet
            rows.insert(
                0,
                {
                    "id": self.replica,
                    "host": self.host,
                    "address": self.address,
                    "version": __version__,
                    "schema": None,
                    "started": self.started,
                    "last_seen": clock,
                },
            )
        return [
            row
            | {
                "last_seen": _iso(row["last_seen"]),
                "alive": clock - float(row["last_seen"]) <= ALIVE_SECONDS,
                "this": row["id"] == self.replica,
            }
            for row in rows
        ]


def _iso(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(float(seconds), timezone.utc).isoformat(timespec="seconds")
