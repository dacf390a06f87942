"""Who may read what, for every transport: the Python API, the CLI, the HTTP API and MCP
ask here.

A :class:`Caller` is who reads: the collections and scopes it holds and, for a user, the
principals its reads are checked against — its e-mail address, its aliases at the sources
(``slack:U123``) and its groups (``group:NAME``). The workspace's operator
(:data:`OWNER`: the Python API and the CLI without ``--as``) and a service key read every
document of their collections; a user reads a collection's open documents and the
restricted ones whose access list names one of its principals. Both checks go into the
retrieval query itself (collections, then a :class:`~citewise.filters.ReadableBy` filter),
so a passage the caller may not read is never a candidate.

Errors are citewise's own (:class:`AccessDenied`, :class:`NotFound`): each transport maps
them at its boundary (the server to 403/404). A document a caller may not read is "not
found", never "forbidden": its existence is not for that caller to learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .errors import AccessDenied, NotFound
from .filters import Filter, ReadableBy
from .keys import ALL_COLLECTIONS, SCOPES, ApiKey
from .names import fold_address
from .storage import Collection, Storage


@dataclass(frozen=True)
class Caller:
    """Who reads, on any transport."""

    name: str  # charged in the usage ledger (a key's or user's name)
    collections: tuple[str, ...] = (ALL_COLLECTIONS,)
    scopes: tuple[str, ...] = SCOPES
    # A user's e-mail address: its reads are checked against ``principals``. None: the
    # operator or a service key, which read every document of their collections.
    user: str | None = None
    principals: frozenset[str] = frozenset()
    key: ApiKey | None = None  # the API key it came with (its rate limits)

    def allows_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def allows_collection(self, name: str) -> bool:
        return ALL_COLLECTIONS in self.collections or name in self.collections

    def readable(self, names: list[str]) -> list[str]:
        return [n for n in names if self.allows_collection(n)]

    def document_filter(self) -> Filter | None:
        """The documents this caller may read, as a retrieval filter (None: all of them)."""
        return None if self.user is None else ReadableBy(self.principals)

    def can_read(self, restricted: bool, principals: Sequence[str]) -> bool:
        """Whether this caller may read a document with this access list."""
        return self.user is None or not restricted or not self.principals.isdisjoint(principals)


class Holder(Protocol):
    """What collection and scope checks need: a Caller, or an API key's record."""

    def allows_scope(self, scope: str) -> bool: ...
    def allows_collection(self, name: str) -> bool: ...
    def readable(self, names: list[str]) -> list[str]: ...


# The workspace's operator: the Python API and the CLI, reading everything.
OWNER = Caller("")


def as_caller(caller: Caller | str | None) -> Caller:
    """A Caller from what a Python API call was given: a Caller, or a name to charge in the
    ledger (the operator, reading everything, as before callers existed)."""
    if isinstance(caller, Caller):
        return caller
    return replace(OWNER, name=caller or "")


def key_caller(key: ApiKey, store: Storage) -> Caller:
    """The caller an API key stands for: a service key reads its collections whole; a
    user's key reads as that user (principals looked up now, so a changed membership
    counts from the next request). A key whose user is gone reads nothing of a
    restricted document (no principals): fail closed."""
    user = getattr(key, "user", None)
    principals = store.identities(user) if user else frozenset()
    return Caller(key.name, key.collections, key.scopes, user, principals, key)


def user_caller(store: Storage, email: str) -> Caller:
    """The caller for ``citewise … --as EMAIL``: that user, reading as it would through a
    key of its own. An unknown user is an error, not the operator."""
    principals = store.identities(email)
    if not principals:
        raise NotFound(f"No user '{email}': `citewise users add` makes one", code="user_not_found")
    return Caller(email, user=fold_address(email), principals=principals)


def readable_collections(
    caller: Holder,
    existing: Sequence[str],
    requested: Sequence[str] | None,
    defaults: Sequence[str] = (),
) -> list[str]:
    """The collections a request reads: the ones it asked for (else ``defaults``, an
    assistant's), each of which the caller must be allowed; with neither, every existing
    collection the caller may read. A requested collection that does not exist is
    :class:`NotFound`; a default one that does not exist is skipped."""
    wanted = list(requested) if requested else list(defaults)
    if not wanted:
        return caller.readable(list(existing))
    for name in wanted:
        if not caller.allows_collection(name):
            raise AccessDenied(
                f"This key may not read the collection '{name}'", code="collection_forbidden"
            )
    unknown = [name for name in wanted if name not in existing]
    if unknown and requested:
        raise NotFound(f"No collection named '{unknown[0]}'", code="collection_not_found")
    return [name for name in wanted if name in existing]


def readable_collection(caller: Holder, store: Storage, name: str) -> Collection:
    """One collection the caller reads by name (a document listing, a fetch)."""
    if not caller.allows_collection(name):
        raise AccessDenied(
            f"This key may not read the collection '{name}'", code="collection_forbidden"
        )
    collection = store.collection(name)
    if collection is None:
        raise NotFound(f"No collection named '{name}'", code="collection_not_found")
    return collection


def require_scope(caller: Holder, scope: str) -> None:
    if not caller.allows_scope(scope):
        raise AccessDenied(f"This key lacks the '{scope}' scope", code="insufficient_scope")
