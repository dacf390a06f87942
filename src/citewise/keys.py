"""API keys for ``citewise serve``: scoped to collections and scopes, stored only as hashes.

A key is shown once, when it is created. The database keeps its first characters
(to find the row) and its SHA-256 (to check it, in constant time); a key is
random enough that a salted slow hash would add nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .errors import WorkspaceError
from .storage import KeyStore
from .storage.sql import now

SCOPES = ("ask", "ingest", "admin")
ALL_COLLECTIONS = "*"
KEY_PREFIX = "cw-"
_PREFIX_CHARS = 8
_NAME = re.compile(r"^[\w.@-]{1,64}$")


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
) -> tuple[str, ApiKey]:
    """A new key (returned once, never stored) and its record."""
    if not _NAME.match(name):
        raise WorkspaceError(f"key name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise WorkspaceError(f"scopes must be some of {', '.join(SCOPES)}; got {scopes}")
    if not collections:
        raise WorkspaceError("a key needs at least one collection (or '*' for all)")
    for limit in (rpm, tpm):
        if limit is not None and limit <= 0:
            raise WorkspaceError("rate limits must be positive numbers")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[: len(KEY_PREFIX) + _PREFIX_CHARS]
    stored = store.insert_api_key(name, prefix, hash_key(key), collections, scopes, rpm, tpm)
    if not stored:
        raise WorkspaceError(f"a key named {name!r} exists; revoke it or pick another name")
    record = ApiKey(name, prefix, tuple(collections), tuple(scopes), rpm, tpm, now())
    return key, record


def list_keys(store: KeyStore, include_revoked: bool = False) -> list[ApiKey]:
    return [_record(row) for row in store.api_key_rows(include_revoked)]


def revoke_key(store: KeyStore, name: str) -> None:
    if not store.revoke_api_key(name):
        raise WorkspaceError(f"no active key named {name!r}; `citewise keys list` shows them")


def any_keys(store: KeyStore) -> bool:
    return store.any_api_keys()


def authenticate(store: KeyStore, key: str) -> ApiKey | None:
    """The active key record matching ``key``, or None. Read on every request: revocation is
    effective at once."""
    if not key.startswith(KEY_PREFIX):
        return None
    supplied = hash_key(key)
    match = None
    for row, stored_hash in store.api_key_rows_with_prefix(key[: len(KEY_PREFIX) + _PREFIX_CHARS]):
        if hmac.compare_digest(stored_hash, supplied) and row[7] is None:
            match = _record(row)
    return match


def _record(row: tuple[Any, ...]) -> ApiKey:
    name, prefix, collections, scopes, rpm, tpm, created, revoked = row
    return ApiKey(
        name,
        prefix,
        tuple(json.loads(collections)),
        tuple(json.loads(scopes)),
        rpm,
        tpm,
        created,
        revoked,
    )
