"""API keys for ``citewise serve``: scoped to collections and scopes, stored only as hashes.

A key is shown once, when it is created. The database keeps its first characters
(to find the row) and its SHA-256 (to check it, in constant time); a key is
random enough that a salted slow hash would add nothing.

A key may belong to a user (``user``, an e-mail address): it then reads what that user
may read. A key without one is a service key, limited by its collections only. Removing
a user revokes its keys, and a key whose user is gone is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .errors import WorkspaceError
from .storage import KeyStore, KeyTrafficStore
from .storage.sql import now
from .storage.sql_access import normalize_email

SCOPES = ("ask", "ingest", "admin")
ALL_COLLECTIONS = "*"
KEY_PREFIX = "cw-"
_PREFIX_CHARS = 8
_NAME = re.compile(r"^[\w.@-]{1,64}$")
# What a key's ``user`` reads when its user was removed (the key is refused at lookup).
REMOVED_USER = "(removed user)"


@dataclass(frozen=True)
class ApiKey:
    name: str
    prefix: str
    collections: tuple[str, ...]  # ("*",) means every collection
    scopes: tuple[str, ...]
    rpm: int | None = None
    tpm: int | None = None
    created_at: str = ""
    revoked_at: str | None = None
    user: str | None = None  # the user it acts for (an e-mail address); None: a service key

    def allows_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def allows_collection(self, name: str) -> bool:
        return ALL_COLLECTIONS in self.collections or name in self.collections

    def readable(self, names: list[str]) -> list[str]:
        return [n for n in names if self.allows_collection(n)]


# The key used when the server runs without authentication (loopback only).
OPEN_ACCESS = ApiKey("(no auth)", "", (ALL_COLLECTIONS,), SCOPES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    store: KeyStore,
    name: str,
    collections: list[str],
    scopes: list[str],
    rpm: int | None = None,
    tpm: int | None = None,
    user: str | None = None,
) -> tuple[str, ApiKey]:
    """A new key (returned once, never stored) and its record; ``user``: the e-mail address
    of the user it belongs to (a user of the store, else :class:`~citewise.errors.NotFound`)."""
    if not _NAME.match(name):
        raise WorkspaceError(f"key name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise WorkspaceError(f"scopes must be some of {', '.join(SCOPES)}; got {scopes}")
    if not collections:
        raise WorkspaceError("a key needs at least one collection (or '*' for all)")
    if user is not None and set(scopes) - {"ask"}:
        # What a key uploads is written for everyone who reads the collection, and an
        # export replaces what it covers, restricted documents included: writing is a
        # service key's (admin implies it).
        raise WorkspaceError("a user's key reads as that user: give it the ask scope only")
    for limit in (rpm, tpm):
        if limit is not None and limit <= 0:
            raise WorkspaceError("rate limits must be positive numbers")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[: len(KEY_PREFIX) + _PREFIX_CHARS]
    owner = None if user is None else normalize_email(user)
    stored = store.insert_api_key(
        name, prefix, hash_key(key), collections, scopes, rpm, tpm, user=owner
    )
    if not stored:
        raise WorkspaceError(f"a key named {name!r} exists; revoke it or pick another name")
    record = ApiKey(name, prefix, tuple(collections), tuple(scopes), rpm, tpm, now(), user=owner)
    return key, record


def list_keys(store: KeyStore, include_revoked: bool = False) -> list[ApiKey]:
    return [_record(row) for row in store.api_key_rows(include_revoked)]


def revoke_key(store: KeyStore, name: str) -> None:
    if not store.revoke_api_key(name):
        raise WorkspaceError(f"no active key named {name!r}; `citewise keys list` shows them")


def any_keys(store: KeyStore) -> bool:
    return store.any_api_keys()


def authenticate(store: KeyStore, key: str) -> ApiKey | None:
    """The active key record matching ``key``, or None. Read on every request: revocation,
    and the removal of the key's user, are effective at once."""
    if not key.startswith(KEY_PREFIX):
        return None
    supplied = hash_key(key)
    match = None
    for row, stored_hash in store.api_key_rows_with_prefix(key[: len(KEY_PREFIX) + _PREFIX_CHARS]):
        if hmac.compare_digest(stored_hash, supplied) and row[7] is None and row[8] != "":
            match = _record(row)
    return match


# Requests and 429s per key are stored in hourly buckets (server/key_traffic.py); "the last
# 24 h" is the current hour's bucket and the 23 before it.
HOUR = 3600
RECENT_HOURS = 24


def hour_of(moment: float) -> int:
    """The Unix time the hour holding ``moment`` starts at."""
    return int(moment // HOUR) * HOUR


def recent_hour(moment: float | None = None) -> int:
    """The first hour counted in "the last 24 h" at ``moment`` (now by default)."""
    return hour_of(time.time() if moment is None else moment) - (RECENT_HOURS - 1) * HOUR


def stored_traffic(store: KeyTrafficStore, since: int | None = None) -> dict[str, dict[str, Any]]:
    """Per key name, every replica's stored counts: ``requests`` and ``rate_limited`` in
    total and from the hour ``since`` on (the last 24 h by default: ``requests_24h``,
    ``rate_limited_24h``), ``last_seen`` (Unix time). A running server adds what it has not flushed yet (a few seconds')."""
    return {
        name: {
            "requests": row["requests"],
            "rate_limited": row["rate_limited"],
            "requests_24h": row["recent_requests"],
            "rate_limited_24h": row["recent_rate_limited"],
            "last_seen": row["last_seen"],
        }
        for name, row in store.key_traffic(recent_hour() if since is None else since).items()
    }


def _record(row: tuple[Any, ...]) -> ApiKey:
    name, prefix, collections, scopes, rpm, tpm, created, revoked, user = row
    return ApiKey(
        name,
        prefix,
        tuple(json.loads(collections)),
        tuple(json.loads(scopes)),
        rpm,
        tpm,
        created,
        revoked,
        REMOVED_USER if user == "" else user,
    )
