"""The exact response cache: model responses kept under a key that covers everything that
can change them or who may see them (``Router.cache_key``), for ``response_cache = "exact"``.

An entry holds what the model sent (its text, tool calls, finish reason), the target that
answered, and the usage and cost of the call it repeats (a hit records them as saved).
Entries expire after ``response_cache_ttl`` seconds; past ``response_cache_entries`` the
oldest go first. Invalidation is by key: it names each collection searched at its index
generation, which every write to the collection bumps, so after a re-ingest or a delete
the same question misses and the stale entry just ages out.

The cache is one SQLite file in the workspace directory (:data:`CACHE_FILE`) for every
store: a workspace on PostgreSQL keeps a local cache per replica (a replica that misses
asks the model once and keeps the answer itself).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

CACHE_FILE = "response_cache.db"


@dataclass(frozen=True)
class CacheEntry:
    key: str  # sha256 hex of the request's canonical JSON
    text: str
    tool_calls: tuple[tuple[str, str, str], ...]  # (id, name, arguments), in call order
    finish_reason: str  # stop | tool_calls: only finished responses are kept
    provider: str
    model: str
    target: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cost_usd: float | None  # what the call cost (None: its target has no price)
    created_at: float = 0.0  # epoch seconds
    expires_at: float = 0.0


@dataclass(frozen=True)
class CacheStats:
    entries: int
    expired: int  # still on disk, no longer served
    bytes: int  # the text and tool calls held


class ResponseCache(Protocol):
    def get(self, key: str) -> CacheEntry | None:
        """The unexpired entry under ``key``, if any."""
        ...

    def put(self, entry: CacheEntry) -> None:
        """Keep ``entry`` (its times set here), replacing one under the same key; then
        drop expired entries and the oldest past the size limit."""
        ...

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        ...

    def stats(self) -> CacheStats: ...


class SqliteResponseCache:
    """A :class:`ResponseCache` in one SQLite file, opened on first use (a workspace whose
    assistants cache nothing never creates it). Safe across threads and processes."""

    def __init__(
        self,
        path: Path,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path, self.ttl, self.max_entries, self.clock = path, ttl, max_entries, clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                """CREATE TABLE IF NOT EXISTS responses (
                    key TEXT PRIMARY KEY, created_at REAL NOT NULL, expires_at REAL NOT NULL,
                    entry TEXT NOT NULL)"""
            )
            db.execute("CREATE INDEX IF NOT EXISTS responses_by_age ON responses(created_at)")
            db.commit()
            self._db = db
        return self._db

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            row = (
                self._connect()
                .execute(
                    "SELECT entry FROM responses WHERE key = ? AND expires_at > ?",
                    (key, self.clock()),
                )
                .fetchone()
            )
        if row is None:
            return None
        fields = json.loads(row[0])
        fields["tool_calls"] = tuple(tuple(call) for call in fields["tool_calls"])
        return CacheEntry(**fields)

    def put(self, entry: CacheEntry) -> None:
        now = self.clock()
        values = asdict(entry) | {"created_at": now, "expires_at": now + self.ttl}
        with self._lock:
            db = self._connect()
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                    (entry.key, now, now + self.ttl, json.dumps(values)),
                )
                db.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
                db.execute(
                    "DELETE FROM responses WHERE key IN (SELECT key FROM responses "
                    "ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
                    (self.max_entries,),
                )

    def clear(self) -> int:
        with self._lock:
            db = self._connect()
            with db:
                return db.execute("DELETE FROM responses").rowcount

    def stats(self) -> CacheStats:
        with self._lock:
            entries, expired, size = (
                self._connect()
                .execute(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE expires_at <= ?), "
                    "COALESCE(SUM(LENGTH(entry)), 0) FROM responses",
                    (self.clock(),),
                )
                .fetchone()
            )
        return CacheStats(entries - expired, expired, size)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
