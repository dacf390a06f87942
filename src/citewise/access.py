"""Who may read what, for every transport: the HTTP API, MCP and the Python API ask here.

A caller is an API key's record (its collections and scopes); without authentication it is
:data:`~citewise.keys.OPEN_ACCESS`. The collections a request reads are decided once, here,
and go into the retrieval query itself, so a passage outside them is never a candidate.
Errors are citewise's own (:class:`AccessDenied`, :class:`NotFound`): each transport maps
them at its boundary (the server to 403/404).
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import AccessDenied, NotFound
from .keys import ApiKey
from .storage import Collection, Storage

# The caller of a request: today an API key's record (collections, scopes).
Caller = ApiKey


def readable_collections(
    caller: Caller,
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


def readable_collection(caller: Caller, store: Storage, name: str) -> Collection:
    """One collection the caller reads by name (a document listing, a fetch)."""
    if not caller.allows_collection(name):
        raise AccessDenied(
            f"This key may not read the collection '{name}'", code="collection_forbidden"
        )
    collection = store.collection(name)
    if collection is None:
        raise NotFound(f"No collection named '{name}'", code="collection_not_found")
    return collection


def require_scope(caller: Caller, scope: str) -> None:
    if not caller.allows_scope(scope):
        raise AccessDenied(f"This key lacks the '{scope}' scope", code="insufficient_scope")
