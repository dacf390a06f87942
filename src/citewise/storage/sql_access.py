"""Users, groups, aliases and document access lists: the queries SQLite and PostgreSQL
share, a part of :class:`~citewise.storage.sql.SqlStore`.

Identities are strings: a user is their e-mail address (lowercased), ``group:NAME`` a
group, and another id a source names a person by (``slack:U123``) an alias of a user.
Every identity an access list names is interned once in ``principals``, so an access row
is two integers and "may read" one indexed lookup per restricted document. What a caller
may read is worked out when it asks (:meth:`SqlAccess._readable_condition`), never stored
per user: adding someone to a group applies to the next query.

A user's API keys are revoked with the user (fail closed: a key whose user is gone is also
refused at lookup, ``keys.authenticate``); user ids are never reused.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput, NotFound
from ..names import COLLECTION_NAME, COLLECTION_NAME_RULE, fold_address
from .base import DocumentAccess, GroupRecord, UserRecord

if TYPE_CHECKING:
    from .sql import Cursor

GROUP_PREFIX = "group:"
# Loose on purpose: one @ with something either side, no spaces.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_MAX_IDENTITY = 320
# Names per statement (SQLite allows 999 parameters in one).
_BATCH = 900


def normalize_email(email: str) -> str:
    """An e-mail address as stored (lowercased), or :class:`InvalidInput`."""
    if not isinstance(email, str):
        raise InvalidInput(f"invalid e-mail address {email!r}", param="email")
    address = fold_address(email)
    if len(address) > _MAX_IDENTITY or not _EMAIL.fullmatch(address):
        raise InvalidInput(
            f"invalid e-mail address {email!r}: use one '@' with text either side and no spaces",
            param="email",
        )
    return address


def normalize_group(name: str) -> str:
    """A group's name (``group:NAME`` or ``NAME``), checked, without the prefix."""
    bare = name.removeprefix(GROUP_PREFIX) if isinstance(name, str) else name
    if not isinstance(bare, str) or not COLLECTION_NAME.fullmatch(bare):
        raise InvalidInput(
            f"invalid group name {name!r}: use {COLLECTION_NAME_RULE}", param="group"
        )
    return bare


def normalize_principal(identity: str) -> str:
    """An access-list entry as stored: e-mail addresses lowercased, other ids as given."""
    if not isinstance(identity, str):
        raise InvalidInput(f"invalid identity {identity!r}: a string", param="access")
    value = identity.strip()
    if not value or len(value) > _MAX_IDENTITY or any(c.isspace() for c in value):
        raise InvalidInput(
            f"invalid identity {identity!r}: an e-mail address, group:NAME or an id such as "
            "slack:U123, without spaces",
            param="access",
        )
    return _as_stored(value)


def _as_stored(identity: str) -> str:
    """What :func:`normalize_principal` stores for an identity, never raising (a caller's
    principals are looked up; one that cannot be stored matches nothing)."""
    value = identity.strip()
    folded = fold_address(value)  # a full-width ＠ is an address too
    return folded if ":" not in folded and "@" in folded else value


def _normalize_alias(alias: str) -> str:
    value = normalize_principal(alias)
    if value.startswith(GROUP_PREFIX):
        raise InvalidInput(f"alias {alias!r}: a group cannot be an alias", param="alias")
    if ":" not in value:
        value = normalize_email(value)  # another address of the user's
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SqlAccess:
    """The :class:`~citewise.storage.base.AccessStore` over the shared SQL."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    # -- users -------------------------------------------------------------------------

    def add_user(self, email: str, name: str = "") -> UserRecord:
        address = normalize_email(email)
        with self.transaction():
            owner = self._alias_owner(address)
            if owner is not None:
                raise InvalidInput(
                    f"{address} is an alias of {owner}; remove the alias first", param="email"
                )
            inserted = self.execute(
                "INSERT INTO users (email, name, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (email) DO NOTHING",
                (address, name, _now()),
            )
            if inserted.rowcount != 1:
                raise InvalidInput(f"a user {address} exists", param="email")
        user = self.user(address)
        assert user is not None
        return user

    def remove_user(self, email: str) -> bool:
        """Removes the user with its memberships and aliases, and revokes its API keys, in
        one transaction; False when there was no such user."""
        address = normalize_email(email)
        with self.transaction():
            user_id = self._user_id(address)
            if user_id is None:
                return False
            self.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                (_now(), user_id),
            )
            self.execute("DELETE FROM group_members WHERE user_id = ?", (user_id,))
            self.execute("DELETE FROM user_aliases WHERE user_id = ?", (user_id,))
            self.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return True

    def users(self) -> list[UserRecord]:
        return self._users("", ())

    def user(self, email: str) -> UserRecord | None:
        found = self._users(" WHERE u.email = ?", (fold_address(email),))
        return found[0] if found else None

    def _users(self, where: str, params: Sequence[Any]) -> list[UserRecord]:
        rows = self.execute(
            f"SELECT u.id, u.email, u.name, u.created_at FROM users u{where} ORDER BY u.email",
            params,
        ).fetchall()
        if not rows:
            return []
        aliases: dict[int, list[str]] = defaultdict(list)
        groups: dict[int, list[str]] = defaultdict(list)
        ids = [int(r[0]) for r in rows]
        for part in _batches(ids):
            marks = ",".join("?" * len(part))
            for user_id, alias in self.execute(
                f"SELECT user_id, alias FROM user_aliases WHERE user_id IN ({marks}) ORDER BY alias",
                part,
            ):
                aliases[user_id].append(alias)
            for user_id, group in self.execute(
                "SELECT m.user_id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id "
                f"WHERE m.user_id IN ({marks}) ORDER BY g.name",
                part,
            ):
                groups[user_id].append(group)
        return [
            UserRecord(email, name, created, tuple(aliases[i]), tuple(groups[i]))
            for i, email, name, created in rows
        ]

    def _user_id(self, address: str) -> int | None:
        row = self.execute("SELECT id FROM users WHERE email = ?", (address,)).fetchone()
        return int(row[0]) if row else None

    def _known_user(self, email: str) -> int:
        address = normalize_email(email)
        user_id = self._user_id(address)
        if user_id is None:
            raise NotFound(f"no user {address}; add the user first", code="user_not_found")
        return user_id

    # -- groups ------------------------------------------------------------------------

    def add_group(self, name: str) -> GroupRecord:
        group = normalize_group(name)
        inserted = self.execute(
            "INSERT INTO groups (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (group, _now()),
        )
        if inserted.rowcount != 1:
            raise InvalidInput(f"a group {group} exists", param="group")
        return next(g for g in self._groups(" WHERE g.name = ?", (group,)))

    def remove_group(self, name: str) -> bool:
        """Removes the group and its memberships; False when there was no such group."""
        group = normalize_group(name)
        with self.transaction():
            group_id = self._group_id(group)
            if group_id is None:
                return False
            self.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
            self.execute("DELETE FROM groups WHERE id = ?", (group_id,))
        return True

    def groups(self) -> list[GroupRecord]:
        return self._groups("", ())

    def _groups(self, where: str, params: Sequence[Any]) -> list[GroupRecord]:
        rows = self.execute(
            f"SELECT g.id, g.name, g.created_at FROM groups g{where} ORDER BY g.name", params
        ).fetchall()
        members: dict[int, list[str]] = defaultdict(list)
        for group_id, email in self.execute(
            "SELECT m.group_id, u.email FROM group_members m JOIN users u ON u.id = m.user_id "
            "ORDER BY u.email"
        ):
            members[group_id].append(email)
        return [GroupRecord(name, created, tuple(members[i])) for i, name, created in rows]

    def _group_id(self, group: str) -> int | None:
        row = self.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()
        return int(row[0]) if row else None

    def _known_group(self, name: str) -> int:
        group = normalize_group(name)
        group_id = self._group_id(group)
        if group_id is None:
            raise NotFound(f"no group {group}; add the group first", code="group_not_found")
        return group_id

    def add_member(self, group: str, email: str) -> bool:
        """Adds a user to a group; False when it was a member already."""
        with self.transaction():
            group_id, user_id = self._known_group(group), self._known_user(email)
            inserted = self.execute(
                "INSERT INTO group_members (group_id, user_id) VALUES (?, ?) "
                "ON CONFLICT (group_id, user_id) DO NOTHING",
                (group_id, user_id),
            )
            return inserted.rowcount == 1

    def remove_member(self, group: str, email: str) -> bool:
        """Takes a user out of a group; False when it was not a member."""
        with self.transaction():
            group_id, user_id = self._known_group(group), self._known_user(email)
            deleted = self.execute(
                "DELETE FROM group_members WHERE group_id = ? AND user_id = ?", (group_id, user_id)
            )
            return deleted.rowcount > 0

    # -- aliases -----------------------------------------------------------------------

    def add_alias(self, email: str, alias: str) -> bool:
        """Another id a source names the user by (``slack:U123``, another address);
        False when the user had it already."""
        value = _normalize_alias(alias)
        with self.transaction():
            user_id = self._known_user(email)
            if self._user_id(value) is not None:
                raise InvalidInput(f"alias {value}: a user of that address exists", param="alias")
            owner = self._alias_owner(value)
            if owner is not None and owner != normalize_email(email):
                raise InvalidInput(f"alias {value} belongs to {owner}", param="alias")
            inserted = self.execute(
                "INSERT INTO user_aliases (alias, user_id) VALUES (?, ?) "
                "ON CONFLICT (alias) DO NOTHING",
                (value, user_id),
            )
            return inserted.rowcount == 1

    def remove_alias(self, alias: str) -> bool:
        deleted = self.execute(
            "DELETE FROM user_aliases WHERE alias = ?", (normalize_principal(alias),)
        )
        return deleted.rowcount > 0

    def _alias_owner(self, alias: str) -> str | None:
        row = self.execute(
            "SELECT u.email FROM user_aliases a JOIN users u ON u.id = a.user_id WHERE a.alias = ?",
            (alias,),
        ).fetchone()
        return str(row[0]) if row else None

    def identities(self, email: str) -> frozenset[str]:
        """The principals a user acts as: its address, its aliases and ``group:G`` for each
        of its groups; empty when there is no such user."""
        user = self.user(email) if isinstance(email, str) else None
        if user is None:
            return frozenset()
        return frozenset({user.email, *user.aliases, *(GROUP_PREFIX + g for g in user.groups)})

    # -- document access lists -----------------------------------------------------------

    def _write_document_access(self, document_id: int, access: Sequence[str] | None) -> None:
        """A document's access rows, replacing any it had (inside its write's transaction;
        the ``restricted`` column is written with the document's row)."""
        self.execute("DELETE FROM document_access WHERE document_id = ?", (document_id,))
        if not access:
            return
        names = sorted({normalize_principal(p) for p in access})
        self._intern_principals(names)
        for part in _batches(names):
            self.execute(
                "INSERT INTO document_access (document_id, principal_id) "
                f"SELECT ?, id FROM principals WHERE name IN ({','.join('?' * len(part))})",
                [document_id, *part],
            )

    def _intern_principals(self, names: Sequence[str]) -> None:
        """Rows in ``principals`` for these identities (a backend may commit them apart
        from the document's transaction: an unused row is harmless)."""
        for name in names:
            self.execute(
                "INSERT INTO principals (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,)
            )

    def _delete_document_access(self, document_ids: Sequence[int]) -> None:
        for part in _batches([int(i) for i in document_ids]):
            self.execute(
                f"DELETE FROM document_access WHERE document_id IN ({','.join('?' * len(part))})",
                part,
            )

    def document_access(self, document_id: int) -> DocumentAccess:
        row = self.execute(
            "SELECT restricted FROM documents WHERE id = ?", (document_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no document with id {document_id}", code="document_not_found")
        return DocumentAccess(bool(row[0]), self._access_list(document_id))

    def _access_list(self, document_id: int) -> tuple[str, ...]:
        rows = self.execute(
            "SELECT p.name FROM document_access a JOIN principals p ON p.id = a.principal_id "
            "WHERE a.document_id = ? ORDER BY p.name",
            (document_id,),
        )
        return tuple(r[0] for r in rows)

    def access_counts(self, collection_id: int) -> dict[str, int]:
        """Documents open to everyone who reads the collection, and restricted ones."""
        counts = {"open": 0, "restricted": 0}
        rows = self.execute(
            "SELECT restricted, count(*) FROM documents WHERE collection_id = ? GROUP BY restricted",
            (collection_id,),
        )
        for restricted, count in rows:
            counts["restricted" if restricted else "open"] += int(count)
        return counts

    def _principal_ids(self, names: Iterable[str]) -> list[int]:
        """The interned ids of those identities that any access list names."""
        wanted = sorted({_as_stored(n) for n in names if isinstance(n, str) and n.strip()})
        ids: list[int] = []
        for part in _batches(wanted):
            rows = self.execute(
                f"SELECT id FROM principals WHERE name IN ({','.join('?' * len(part))})", part
            )
            ids.extend(int(r[0]) for r in rows)
        return sorted(ids)

    def _readable_condition(self, principals: frozenset[str]) -> tuple[str, list[Any]]:
        """SQL (and its parameters) true for a document ``d`` the holder of ``principals``
        may read: one open to its collection, or one whose access list names one of them."""
        ids = self._principal_ids(principals)
        if not ids:
            return "(NOT d.restricted)", []
        return (
            "(NOT d.restricted OR EXISTS (SELECT 1 FROM document_access a "
            f"WHERE a.document_id = d.id AND a.principal_id IN ({','.join('?' * len(ids))})))",
            list(ids),
        )

    def readable_chunk_ids(self, collection_id: int, principals: frozenset[str]) -> np.ndarray:
        """Chunks of the documents the holder of ``principals`` may read, in id order:
        the open documents (by the index on collection and ``restricted``) and those the
        access index lists for its principals — never a scan of every restricted one."""
        ids = self._principal_ids(principals)
        sql = (
            "SELECT c.id FROM documents d JOIN chunks c ON c.document_id = d.id "
            "WHERE d.collection_id = ? AND d.restricted = ?"
        )
        params: list[Any] = [collection_id, False]
        if ids:
            # CROSS JOIN: SQLite joins in the order written — from the principals' access
            # rows out, not from every restricted document in (PostgreSQL plans either way).
            sql += (
                " UNION SELECT c.id FROM document_access a "
                "CROSS JOIN documents d CROSS JOIN chunks c "
                f"WHERE a.principal_id IN ({','.join('?' * len(ids))}) "
                "AND d.id = a.document_id AND d.collection_id = ? AND d.restricted = ? "
                "AND c.document_id = d.id"
            )
            params += [*ids, collection_id, True]
        rows = self.execute(sql + " ORDER BY 1", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def readable_counts(self, collection_id: int, principals: frozenset[str]) -> tuple[int, int]:
        """(documents, chunks) the holder of ``principals`` may read, counted in one query
        over the same indexes as :meth:`readable_chunk_ids` — no chunk id leaves the store."""
        readable, params = self._readable_documents(collection_id, principals)
        row = self.execute(
            f"WITH readable (id) AS ({readable}) SELECT (SELECT count(*) FROM readable), "
            "(SELECT count(*) FROM readable r JOIN chunks c ON c.document_id = r.id)",
            params,
        ).fetchone()
        return int(row[0]), int(row[1])

    def _readable_documents(
        self, collection_id: int, principals: frozenset[str]
    ) -> tuple[str, list[Any]]:
        """A SELECT of the ids (each once) of the documents the holder of ``principals`` may
        read, and its parameters: the open ones by the index on collection and
        ``restricted``, the restricted ones from the principals' access rows out."""
        ids = self._principal_ids(principals)
        sql = "SELECT d.id FROM documents d WHERE d.collection_id = ? AND d.restricted = ?"
        params: list[Any] = [collection_id, False]
        if ids:
            # UNION ALL: the two parts are disjoint (restricted or not); DISTINCT, as one
            # document may name several of the caller's principals. CROSS JOIN: as above.
            sql += (
                " UNION ALL SELECT DISTINCT d.id FROM document_access a CROSS JOIN documents d "
                f"WHERE a.principal_id IN ({','.join('?' * len(ids))}) "
                "AND d.id = a.document_id AND d.collection_id = ? AND d.restricted = ?"
            )
            params += [*ids, collection_id, True]
        return sql, params


def _batches(values: Sequence[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _BATCH):
        yield list(values[start : start + _BATCH])
