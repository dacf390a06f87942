"""The queries SQLite and PostgreSQL share, written once with ``?`` parameters.

A backend subclasses :class:`SqlStore` and supplies its connection, transactions, schema,
the chunk rows (vector and keyword entries differ) and its metadata filter. Chunks are
spans of their document's text, so chunk text is never stored twice.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from ..documents import Chunk, Document, Hit
from ..errors import WorkspaceError
from ..filters import SOURCE, And, Compare, Filter, In, Not, Or, ReadableBy, Scalar, check, kind
from .base import (
    Collection,
    DocumentRecord,
    DocumentState,
    JobRecord,
    SourceKindStats,
    StoredDocument,
)
from .sql_access import SqlAccess

# Chunk id lists are sent in parts: SQLite allows 999 parameters in one statement.
ID_BATCH = 900


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Connection(Protocol):
    """The DB-API connection both drivers give (sqlite3, psycopg), as far as shared
    queries use it."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...


class Cursor(Protocol):
    """The DB-API cursor a backend's :meth:`SqlStore.execute` returns (rows are tuples)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlStore(SqlAccess):
    """Collections, documents, chunks, keys, runs and feedback over a DB-API connection;
    users, groups and access lists come from :class:`SqlAccess`."""

    url: str

    # -- connections: one per thread -------------------------------------------------

    def _open_connections(self) -> None:
        self._local = threading.local()
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()

    @property
    def db(self) -> Any:
        """This thread's connection, opened on first use."""
        return self._thread_connection()

    def _thread_connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or getattr(connection, "closed", False):
            if connection is not None:  # closed under us (an outage): replaced, not kept
                with self._connections_lock:
                    if connection in self._connections:
                        self._connections.remove(connection)
            connection = self._connect()
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # -- what a backend supplies -----------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement on this thread's connection; returns its cursor."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """All statements inside commit together or not at all."""
        raise NotImplementedError

    def _insert_chunks(
        self,
        collection_id: int,
        document_id: int,
        title: str,
        text: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
    ) -> None:
        raise NotImplementedError

    def _delete_chunks(self, document_ids: Sequence[int]) -> None:
        raise NotImplementedError

    def _json_kind(self, key: str, kind: str) -> str:
        """SQL true when document ``d``'s metadata holds a value of ``kind`` (filters.kind:
        number, string, boolean) at ``key`` (checked: letters, digits, _ and dots)."""
        raise NotImplementedError

    def _json_value(self, key: str, kind: str) -> str:
        """SQL for the value of ``kind`` at ``key``, ordered as filters.py says (text by
        code point), compared with a parameter; only evaluated where :meth:`_json_kind`."""
        raise NotImplementedError

    def _metadata_in(self, key: str, values: Sequence[Scalar]) -> tuple[str, list[Any]]:
        """SQL (never NULL) true when the value at ``key`` equals one of ``values`` of its
        own kind, and its parameters."""
        by_kind: dict[str, list[Scalar]] = {}
        for value in values:
            by_kind.setdefault(str(kind(value)), []).append(value)
        parts = [
            f"(CASE WHEN {self._json_kind(key, found)} THEN {self._json_value(key, found)} "
            f"IN ({_marks(same)}) ELSE FALSE END)"
            for found, same in by_kind.items()
        ]
        sql = "(" + " OR ".join(parts) + ")" if parts else "FALSE"
        return sql, [value for same in by_kind.values() for value in same]

    def _text_order(self, expression: str) -> str:
        """``expression`` (text) compared by code point."""
        return expression

    def _source_condition(self) -> str:
        """SQL matching ``d.source`` against one glob parameter."""
        raise NotImplementedError

    def _source_parameter(self, glob: str) -> Any:
        return glob

    def _store_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        raise NotImplementedError

    # -- collections -------------------------------------------------------------------

    def collections(self) -> list[Collection]:
        rows = self.execute(
            "SELECT id, name, embedder, dim, generation FROM collections ORDER BY name"
        )
        return [Collection(*row) for row in rows]

    def collection(self, name: str) -> Collection | None:
        row = self.execute(
            "SELECT id, name, embedder, dim, generation FROM collections WHERE name = ?", (name,)
        ).fetchone()
        return Collection(*row) if row else None

    def collection_settings(
        self, collection_id: int
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A collection's tuned retrieval settings and the report behind them, if any."""
        row = self.execute(
            "SELECT settings, report FROM collection_settings WHERE collection_id = ?",
            (collection_id,),
        ).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def set_collection_settings(
        self, collection_id: int, settings: dict[str, Any] | None, report: dict[str, Any]
    ) -> None:
        """Save (or, with ``None``, remove) a collection's tuned retrieval settings."""
        with self.transaction():
            self.execute(
                "DELETE FROM collection_settings WHERE collection_id = ?", (collection_id,)
            )
            if settings is not None:
                self.execute(
                    "INSERT INTO collection_settings VALUES (?, ?, ?, ?)",
                    (collection_id, json.dumps(settings), json.dumps(report), now()),
                )

    def create_collection(self, name: str, embedder: str, dim: int) -> Collection:
        with self.transaction():
            self.execute(
                "INSERT INTO collections (name, embedder, dim, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, embedder, dim, now()),
            )
        collection = self.collection(name)
        assert collection is not None
        return collection

    def set_collection_embedder(self, collection_id: int, embedder: str, dim: int) -> None:
        self.execute(
            "UPDATE collections SET embedder = ?, dim = ?, generation = generation + 1 WHERE id = ?",
            (embedder, dim, collection_id),
        )

    def chunk_ids(self, collection_id: int) -> list[int]:
        rows = self.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.collection_id = ? ORDER BY c.id",
            (collection_id,),
        )
        return [row[0] for row in rows]

    def replace_embeddings(
        self,
        collection_id: int,
        ids: Sequence[int],
        vectors: np.ndarray | None,
        embedder: str,
        dim: int,
    ) -> None:
        """New vectors for ``ids`` and the collection's new embedder, in one transaction."""
        with self.transaction():
            if vectors is not None:
                self._store_vectors(ids, vectors)
            self.set_collection_embedder(collection_id, embedder, dim)

    def counts(self, collection_id: int) -> tuple[int, int, int]:
        """(documents, chunks, tokens) in a collection."""
        row = self.execute(
            "SELECT count(DISTINCT d.id), count(c.id), coalesce(sum(c.n_tokens), 0) FROM documents d "
            "LEFT JOIN chunks c ON c.document_id = d.id WHERE d.collection_id = ?",
            (collection_id,),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    # Where a substring starts in a text (1-based, 0: absent): SQLite's instr; PostgreSQL
    # overrides it with strpos.
    def _position(self, text: str, needle: str) -> str:
        return f"instr({text}, {needle})"

    def source_kinds(self, collection_id: int) -> list[SourceKindStats]:
        """Documents per kind of source: the scheme before ``://`` (``slack``, ``https``,
        ``notion``, ``gmail``, …), ``file`` for a server path (POSIX or Windows, as
        :func:`~citewise.server.source_paths.is_server_path`), else ``item`` (a document
        added by its id: ``add_items``, a BEIR corpus)."""
        at = self._position("d.source", "'://'")
        server_path = (
            "(substr(d.source, 1, 1) = '/' OR substr(d.source, 1, 2) = '\\\\' OR "
            "(substr(d.source, 2, 2) IN (':\\', ':/') AND "
            "upper(substr(d.source, 1, 1)) BETWEEN 'A' AND 'Z'))"
        )
        rows = self.execute(
            "SELECT kind, count(*), coalesce(sum(n_chunks), 0), coalesce(sum(size), 0), "
            "max(updated_at) FROM (SELECT "
            f"CASE WHEN {at} > 1 THEN substr(d.source, 1, {at} - 1) "
            f"WHEN {server_path} THEN 'file' ELSE 'item' END AS kind, "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS n_chunks, "
            "coalesce(d.size, 0) AS size, d.updated_at AS updated_at "
            "FROM documents d WHERE d.collection_id = ?) s GROUP BY kind ORDER BY kind",
            (collection_id,),
        ).fetchall()
        return [
            SourceKindStats(str(kind), int(docs), int(chunks), int(size), updated)
            for kind, docs, chunks, size, updated in rows
        ]

    # -- API keys (rows: name, prefix, collections, scopes, rpm, tpm, created, revoked,
    # user: the owner's e-mail address, None for a service key, "" for a removed user) ---

    def insert_api_key(
        self,
        name: str,
        prefix: str,
        key_hash: str,
        collections: list[str],
        scopes: list[str],
        rpm: int | None,
        tpm: int | None,
        user: str | None = None,
    ) -> bool:
        """False when an active key of that name exists. A revoked key gives its name up:
        its row stays (for the record) as ``NAME (revoked #ID)``, which no key name can be.
        ``user``: the e-mail address of the user the key belongs to (:class:`NotFound`
        when there is no such user)."""
        with self.transaction():
            user_id = None if user is None else self._known_user(user)
            revoked = self.execute(
                "SELECT id FROM api_keys WHERE name = ? AND revoked_at IS NOT NULL", (name,)
            ).fetchone()
            if revoked is not None:
                self.execute(
                    "UPDATE api_keys SET name = ? WHERE id = ?",
                    (f"{name} (revoked #{revoked[0]})", revoked[0]),
                )
            inserted = self.execute(
                "INSERT INTO api_keys (name, prefix, hash, collections, scopes, rpm, tpm, "
                "created_at, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (
                    name,
                    prefix,
                    key_hash,
                    json.dumps(collections),
                    json.dumps(scopes),
                    rpm,
                    tpm,
                    now(),
                    user_id,
                ),
            )
            return inserted.rowcount == 1

    def api_key_rows(self, include_revoked: bool = False) -> list[tuple[Any, ...]]:
        sql = "SELECT " + _API_KEY_COLUMNS + _API_KEY_FROM
        if not include_revoked:
            sql += " WHERE k.revoked_at IS NULL"
        return [tuple(row) for row in self.execute(sql + " ORDER BY k.name").fetchall()]

    def api_key_rows_with_prefix(self, prefix: str) -> list[tuple[tuple[Any, ...], str]]:
        """(row, stored hash) of every key, active or revoked, with this prefix."""
        rows = self.execute(
            f"SELECT {_API_KEY_COLUMNS}, k.hash{_API_KEY_FROM} WHERE k.prefix = ?",
            (prefix,),
        ).fetchall()
        return [(tuple(row[:9]), row[9]) for row in rows]

    def revoke_api_key(self, name: str) -> bool:
        cursor = self.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (now(), name),
        )
        return cursor.rowcount > 0

    def any_api_keys(self) -> bool:
        return self.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

    def export_api_keys(self) -> list[tuple[Any, ...]]:
        """Every key as stored, hash included: (name, prefix, hash, collections, scopes,
        rpm, tpm, created_at, revoked_at, user)."""
        rows = self.execute(
            "SELECT k.name, k.prefix, k.hash, k.collections, k.scopes, k.rpm, k.tpm, "
            "k.created_at, k.revoked_at, "
            "CASE WHEN k.user_id IS NULL THEN NULL ELSE coalesce(u.email, '') END"
            + _API_KEY_FROM
            + " ORDER BY k.id"
        )
        return [tuple(row) for row in rows]

    def import_api_key(self, row: Sequence[Any]) -> bool:
        """A key from :meth:`export_api_keys` (False: one of that name is here already).
        A user's key whose user is not here is imported revoked: it never turns into a
        service key."""
        values, user = list(row[:9]), row[9] if len(row) > 9 else None
        user_id = None
        if user is not None:
            user_id = self._user_id(user) if user else None
            if user_id is None and values[8] is None:
                values[8] = now()
        inserted = self.execute(
            "INSERT INTO api_keys (name, prefix, hash, collections, scopes, rpm, tpm, created_at, "
            "revoked_at, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (*values, user_id),
        )
        return inserted.rowcount == 1

    # -- documents -----------------------------------------------------------------------

    def document_state(self, collection_id: int, source: str) -> DocumentState | None:
        row = self.execute(
            "SELECT id, content_hash, mtime_ns, size FROM documents WHERE collection_id = ? AND source = ?",
            (collection_id, source),
        ).fetchone()
        return DocumentState(*row) if row else None

    def touch_document(self, document_id: int, mtime_ns: int | None, size: int | None) -> None:
        self.execute(
            "UPDATE documents SET mtime_ns = ?, size = ? WHERE id = ?",
            (mtime_ns, size, document_id),
        )

    def mark_document_stale(self, document_id: int) -> None:
        self.execute(
            "UPDATE documents SET content_hash = '', mtime_ns = NULL, size = NULL WHERE id = ?",
            (document_id,),
        )

    def replace_document(
        self,
        collection_id: int,
        document: Document,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        mtime_ns: int | None = None,
        size: int | None = None,
    ) -> int:
        """Insert or replace a document and its chunks atomically; returns its id."""
        with self.transaction():
            # The collection's row first: writers to one collection queue here, and the
            # generation they bump tells derived indexes what changed.
            self._bump(collection_id)
            existing = self.document_state(collection_id, document.source)
            metadata = json.dumps(document.metadata)
            restricted = document.access is not None
            if existing is not None:
                self._delete_chunks([existing.id])
                self.execute(
                    "UPDATE documents SET title = ?, content_hash = ?, mtime_ns = ?, size = ?, "
                    "text = ?, metadata = ?, updated_at = ?, restricted = ? WHERE id = ?",
                    (
                        document.title,
                        document.content_hash,
                        mtime_ns,
                        size,
                        document.text,
                        metadata,
                        now(),
                        restricted,
                        existing.id,
                    ),
                )
                document_id = existing.id
            else:
                document_id = self.execute(
                    "INSERT INTO documents (collection_id, source, title, content_hash, mtime_ns, "
                    "size, text, metadata, updated_at, restricted) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        collection_id,
                        document.source,
                        document.title,
                        document.content_hash,
                        mtime_ns,
                        size,
                        document.text,
                        metadata,
                        now(),
                        restricted,
                    ),
                ).fetchone()[0]
            self._write_document_access(document_id, document.access)
            self._insert_chunks(
                collection_id, document_id, document.title, document.text, chunks, vectors
            )
        return int(document_id)

    def delete_documents(self, collection_id: int, document_ids: Sequence[int]) -> None:
        if not document_ids:
            return
        with self.transaction():
            self._bump(collection_id)
            self._delete_chunks(document_ids)
            self._delete_document_access(document_ids)
            for document_id in document_ids:
                self.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    def _bump(self, collection_id: int) -> None:
        self.execute(
            "UPDATE collections SET generation = generation + 1 WHERE id = ?", (collection_id,)
        )

    def sources(self, collection_id: int) -> dict[str, int]:
        rows = self.execute(
            "SELECT source, id FROM documents WHERE collection_id = ?", (collection_id,)
        )
        return {source: document_id for source, document_id in rows}

    def list_documents(
        self,
        collection_id: int,
        limit: int = 100,
        offset: int = 0,
        readable_by: frozenset[str] | None = None,
    ) -> list[DocumentRecord]:
        """A page of documents by source, with ``readable_by`` of those its principals may
        read. The page is chosen first, walking the (collection, source) index and checking
        access per document by the access rows' key, so only the page's chunks are counted
        and no readable document costs a query of its own."""
        readable, params = (
            ("", []) if readable_by is None else self._readable_condition(readable_by)
        )
        # The inner ``d`` shadows the outer one: the access condition is on the page's rows.
        page = (
            "SELECT d.id FROM documents d WHERE d.collection_id = ?"
            + (f" AND {readable}" if readable else "")
            + " ORDER BY d.source LIMIT ? OFFSET ?"
        )
        rows = self.execute(
            _DOCUMENT_RECORD_SQL + f" WHERE d.id IN ({page}) GROUP BY d.id, k.name "
            "ORDER BY d.source",
            (collection_id, *params, limit, offset),
        )
        return [_document_record(row) for row in rows]

    def document(self, collection_id: int, document_id: int) -> DocumentRecord | None:
        row = self.execute(
            _DOCUMENT_RECORD_SQL + " WHERE d.collection_id = ? AND d.id = ? GROUP BY d.id, k.name",
            (collection_id, document_id),
        ).fetchone()
        return _document_record(row) if row else None

    def document_chunk_ids(self, document_id: int) -> list[int]:
        """A document's chunk ids in document order."""
        rows = self.execute(
            "SELECT id FROM chunks WHERE document_id = ? ORDER BY ord", (document_id,)
        )
        return [row[0] for row in rows]

    def document_text(self, document_id: int) -> str:
        row = self.execute("SELECT text FROM documents WHERE id = ?", (document_id,)).fetchone()
        if row is None:
            raise WorkspaceError(f"no document with id {document_id}")
        return str(row[0])

    def export_documents(self, collection_id: int) -> Iterator[StoredDocument]:
        """Every document of a collection with its chunks and vectors, as stored (what
        ``citewise migrate`` copies without parsing or embedding again)."""
        ids = [
            row[0]
            for row in self.execute(
                "SELECT id FROM documents WHERE collection_id = ? ORDER BY id", (collection_id,)
            )
        ]
        for document_id in ids:
            row = self.execute(
                "SELECT source, title, text, content_hash, metadata, mtime_ns, size, restricted "
                "FROM documents WHERE id = ?",
                (document_id,),
            ).fetchone()
            if row is None:  # deleted meanwhile
                continue
            source, title, text, content_hash, metadata, mtime_ns, size, restricted = row
            chunk_rows = self.execute(
                'SELECT id, ord, start, "end", page, heading_path, n_tokens FROM chunks '
                "WHERE document_id = ? ORDER BY ord",
                (document_id,),
            ).fetchall()
            chunks = [
                Chunk(o, a, b, text[a:b], n, tuple(json.loads(h)), p)
                for _, o, a, b, p, h, n in chunk_rows
            ]
            vectors = self._vectors_of([r[0] for r in chunk_rows])
            document = Document(source, title, text, [], content_hash, json.loads(metadata))
            if restricted:
                document.access = self._access_list(document_id)
            yield StoredDocument(document, chunks, vectors, mtime_ns, size)

    def _vectors_of(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """The vectors of these chunks, in this order."""
        raise NotImplementedError

    # -- ingest jobs, shared by server replicas -----------------------------------------

    # Added to the claim's SELECT where the database can skip rows another transaction
    # holds (PostgreSQL); SQLite's one writer at a time needs nothing.
    _skip_locked = ""

    def create_job(self, job_id: str, collection: str, state: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO jobs (id, collection, status, state, attempts, created_at) "
            "VALUES (?, ?, 'queued', ?, 0, ?)",
            (job_id, collection, json.dumps(state), time.time()),
        )

    def claim_job(self, worker: str, lease_s: float, max_attempts: int) -> JobRecord | None:
        """The oldest job that is queued, or running with a lapsed lease (its replica
        stopped), now leased to ``worker``; a job that lapsed ``max_attempts`` times fails."""
        # A read first: an idle replica polls, and a write transaction per poll would take
        # SQLite's one write lock every second for nothing.
        waiting = self.execute(
            "SELECT 1 FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < ?) "
            "LIMIT 1",
            (time.time(),),
        ).fetchone()
        if waiting is None:
            return None
        while True:
            with self.transaction():
                now_s = time.time()
                row = self.execute(
                    "SELECT id, collection, state, attempts FROM jobs "
                    "WHERE status = 'queued' OR (status = 'running' AND lease_until < ?) "
                    "ORDER BY created_at, id LIMIT 1" + self._skip_locked,
                    (now_s,),
                ).fetchone()
                if row is None:
                    return None
                job_id, collection, state, attempts = row
                state = json.loads(state)
                if attempts >= max_attempts:
                    state |= {
                        "status": "failed",
                        "finished_at": now_s,
                        "error": f"the server running it stopped {attempts} times",
                    }
                    self.execute(
                        "UPDATE jobs SET status = 'failed', state = ? WHERE id = ?",
                        (json.dumps(state), job_id),
                    )
                    continue
                self.execute(
                    "UPDATE jobs SET status = 'running', worker = ?, lease_until = ?, "
                    "attempts = attempts + 1 WHERE id = ?",
                    (worker, now_s + lease_s, job_id),
                )
                return JobRecord(job_id, collection, "running", state, attempts + 1, worker)

    def save_job(
        self, job_id: str, worker: str, status: str, state: dict[str, Any], lease_s: float
    ) -> bool:
        """Record a job's progress and renew its lease; False when the lease was lost
        (another replica took the job over)."""
        cursor = self.execute(
            "UPDATE jobs SET status = ?, state = ?, lease_until = ? WHERE id = ? AND worker = ?",
            (status, json.dumps(state), time.time() + lease_s, job_id, worker),
        )
        return cursor.rowcount == 1

    def job(self, job_id: str) -> JobRecord | None:
        row = self.execute(
            "SELECT id, collection, status, state, attempts, worker FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        return JobRecord(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def jobs(
        self, status: str | None = None, limit: int = 100, collection: str | None = None
    ) -> list[JobRecord]:
        conditions, params = [], list[Any]()
        for column, value in (("status", status), ("collection", collection)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self.execute(
            "SELECT id, collection, status, state, attempts, worker FROM jobs"
            + where
            + " ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [JobRecord(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def job_counts(self) -> dict[str, int]:
        rows = self.execute("SELECT status, count(*) FROM jobs GROUP BY status")
        return {status: int(count) for status, count in rows}

    def unfinished_job_files(self) -> set[str]:
        """The files of every queued or running job (their replicas will finish them)."""
        rows = self.execute("SELECT state FROM jobs WHERE status IN ('queued', 'running')")
        return {path for (state,) in rows for path in json.loads(state).get("paths", [])}

    def finished_job_files(self) -> dict[str, float]:
        """The files of every job that ended (done or failed): when the latest job naming
        each one was queued (Unix time)."""
        rows = self.execute("SELECT state, created_at FROM jobs WHERE status IN ('done', 'failed')")
        files: dict[str, float] = {}
        for state, created in rows:
            for path in json.loads(state).get("paths", []):
                files[path] = max(files.get(path, 0.0), float(created))
        return files

    def shared_secret(self, name: str) -> bytes:
        """A random secret every replica of the store shares (made on first use)."""
        self.execute(
            "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (name, secrets.token_hex(32)),
        )
        row = self.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return bytes.fromhex(row[0])

    # -- feedback --------------------------------------------------------------------

    def add_feedback(
        self,
        key_name: str,
        rating: int,
        question: str,
        answer: str,
        citations: list[dict[str, Any]],
        model: str | None,
        comment: str | None,
    ) -> int:
        row = self.execute(
            "INSERT INTO feedback (key_name, rating, question, answer, citations, model, comment, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (key_name, rating, question, answer, json.dumps(citations), model, comment, now()),
        ).fetchone()
        return int(row[0])

    def feedback(self) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT id, key_name, rating, question, answer, citations, model, comment, created_at "
            "FROM feedback ORDER BY id"
        )
        names = (
            "id",
            "key_name",
            "rating",
            "question",
            "answer",
            "citations",
            "model",
            "comment",
            "created_at",
        )
        return [
            dict(zip(names, row, strict=True)) | {"citations": json.loads(row[5])} for row in rows
        ]

    # -- evaluation runs ---------------------------------------------------------------

    def add_eval_run(
        self,
        kind: str,
        dataset: str,
        queries: int,
        settings: dict[str, Any],
        metrics: dict[str, Any],
        results: list[dict[str, Any]],
    ) -> int:
        row = self.execute(
            "INSERT INTO eval_runs (created_at, kind, dataset, queries, settings, metrics, "
            "results) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                now(),
                kind,
                dataset,
                queries,
                json.dumps(settings),
                json.dumps(metrics),
                json.dumps(results),
            ),
        ).fetchone()
        return int(row[0])

    def eval_runs(self, limit: int = 500, kind: str | None = None) -> list[dict[str, Any]]:
        where = "" if kind is None else " WHERE kind = ?"
        rows = self.execute(
            "SELECT id, created_at, kind, dataset, queries, settings, metrics FROM eval_runs"
            + where
            + " ORDER BY id DESC LIMIT ?",
            (limit,) if kind is None else (kind, limit),
        )
        return [_eval_run(row) for row in rows]

    def eval_run(self, run_id: int) -> dict[str, Any] | None:
        row = self.execute(
            "SELECT id, created_at, kind, dataset, queries, settings, metrics, results "
            "FROM eval_runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        return None if row is None else _eval_run(row[:7]) | {"results": json.loads(row[7])}

    # -- replicas ----------------------------------------------------------------------

    def beat_replica(
        self, replica: str, host: str, address: str, version: str, schema: str, started: str
    ) -> None:
        self.execute(
            "INSERT INTO replicas (id, host, address, version, schema_version, started_at, "
            "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "host = excluded.host, address = excluded.address, version = excluded.version, "
            "schema_version = excluded.schema_version, last_seen = excluded.last_seen",
            (replica, host, address, version, schema, started, time.time()),
        )

    def replicas(self, seen_since: float) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT id, host, address, version, schema_version, started_at, last_seen "
            "FROM replicas WHERE last_seen >= ? ORDER BY last_seen DESC, id",
            (seen_since,),
        )
        names = ("id", "host", "address", "version", "schema", "started", "last_seen")
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -- requests and 429s per key, in hourly buckets -----------------------------------

    def add_key_traffic(self, rows: Sequence[tuple[str, int, int, int, float]]) -> None:
        with self.transaction():
            for name, hour, requests, rate_limited, last_seen in sorted(rows):
                # Sorted: replicas flushing at once lock buckets in the same order.
                self.execute(
                    "INSERT INTO key_traffic (key_name, hour, requests, rate_limited, "
                    "last_seen) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_name, hour) DO UPDATE "
                    "SET requests = key_traffic.requests + excluded.requests, "
                    "rate_limited = key_traffic.rate_limited + excluded.rate_limited, "
                    "last_seen = CASE WHEN excluded.last_seen > key_traffic.last_seen "
                    "THEN excluded.last_seen ELSE key_traffic.last_seen END",
                    (name, int(hour), int(requests), int(rate_limited), float(last_seen)),
                )

    def key_traffic(self, recent_hour: int) -> dict[str, dict[str, Any]]:
        rows = self.execute(
            "SELECT key_name, sum(requests), sum(rate_limited), "
            "sum(CASE WHEN hour >= ? THEN requests ELSE 0 END), "
            "sum(CASE WHEN hour >= ? THEN rate_limited ELSE 0 END), max(last_seen) "
            "FROM key_traffic GROUP BY key_name",
            (int(recent_hour), int(recent_hour)),
        )
        return {
            name: {
                "requests": int(requests),
                "rate_limited": int(limited),
                "recent_requests": int(recent),
                "recent_rate_limited": int(recent_limited),
                "last_seen": float(seen),
            }
            for name, requests, limited, recent, recent_limited, seen in rows
        }

    # -- chunks --------------------------------------------------------------------------

    def hits(self, chunk_ids: Sequence[int]) -> dict[int, Hit]:
        """Stored chunks as unscored hits, by chunk id (missing ids are left out)."""
        out: dict[int, Hit] = {}
        for part in _parts(chunk_ids):
            rows = self.execute(
                "SELECT c.id, c.document_id, k.name, d.source, d.title, "
                'substr(d.text, c.start + 1, c."end" - c.start), c.start, c."end", c.page, '
                "c.heading_path, d.metadata FROM chunks c JOIN documents d ON d.id = c.document_id "
                f"JOIN collections k ON k.id = d.collection_id WHERE c.id IN ({_marks(part)})",
                part,
            )
            row: tuple[int, int, str, str, str, str, int, int, int | None, str, str]
            for row in rows:
                out[row[0]] = Hit(
                    *row[:9],
                    heading_path=tuple(json.loads(row[9])),
                    score=0.0,
                    metadata=json.loads(row[10]),
                )
        return out

    def filtered_chunk_ids(self, collection_id: int, node: Filter) -> np.ndarray:
        """Chunks of the collection's documents that pass the filter. A caller's access
        (a ReadableBy part) is looked up through the access index, not row by row: at a
        million chunks that is most of a filtered search's time."""
        readable, rest = _split_access(node)
        if readable is not None:
            ids = self.readable_chunk_ids(collection_id, readable.principals)
            if rest is None:
                return ids
            return np.intersect1d(ids, self.filtered_chunk_ids(collection_id, rest))
        condition, params = self.filter_sql(node)
        rows = self.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
            f"WHERE d.collection_id = ? AND {condition}",
            [collection_id, *params],
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def filter_clause(self, node: Filter | None) -> tuple[str, list[Any]]:
        """``" AND <condition>"`` on document ``d`` (and its parameters) for a query's
        WHERE; "" without a filter."""
        if node is None:
            return "", []
        condition, params = self.filter_sql(node)
        return f" AND {condition}", params

    def filter_sql(self, node: Filter) -> tuple[str, list[Any]]:
        """A condition on document ``d``, true or false (never NULL: NOT stays the
        complement) exactly where :func:`citewise.filters.matches` is, and its parameters.
        Values are always parameters; keys and operators are checked before they are
        written into the SQL."""
        if isinstance(node, And | Or):
            if not node.parts:
                return ("TRUE" if isinstance(node, And) else "FALSE"), []
            parts = [self.filter_sql(part) for part in node.parts]
            joined = (" AND " if isinstance(node, And) else " OR ").join(sql for sql, _ in parts)
            return f"({joined})", [param for _, params in parts for param in params]
        if isinstance(node, Not):
            condition, params = self.filter_sql(node.part)
            return f"(NOT {condition})", params
        if isinstance(node, ReadableBy):
            return self._readable_condition(node.principals)
        check(node)
        if isinstance(node, In):
            condition, params = self._equal_sql(node.key, node.values)
            return (f"(NOT {condition})" if node.negated else condition), params
        if node.op in ("=", "!="):
            condition, params = self._equal_sql(node.key, (node.value,))
            return (f"(NOT {condition})" if node.op == "!=" else condition), params
        return self._range_sql(node)

    def _equal_sql(self, key: str, values: Sequence[Scalar]) -> tuple[str, list[Any]]:
        if key != SOURCE:
            return self._metadata_in(key, values)
        if not values:
            return "FALSE", []
        globs = " OR ".join([self._source_condition()] * len(values))
        return f"({globs})", [self._source_parameter(str(glob)) for glob in values]

    def _range_sql(self, node: Compare) -> tuple[str, list[Any]]:
        if node.key == SOURCE:
            return f"({self._text_order('d.source')} {node.op} ?)", [node.value]
        found = str(kind(node.value))
        return (
            f"(CASE WHEN {self._json_kind(node.key, found)} THEN "
            f"{self._json_value(node.key, found)} {node.op} ? ELSE FALSE END)",
            [node.value],
        )

    def chunk_documents(self, chunk_ids: Sequence[int]) -> dict[int, int]:
        """The document id of each chunk (missing chunks are left out)."""
        return self._per_chunk(chunk_ids, "SELECT id, document_id FROM chunks WHERE id IN ({})")

    def chunk_sources(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        """The source of each chunk's document (missing chunks are left out)."""
        return self._per_chunk(
            chunk_ids,
            "SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.id IN ({})",
        )

    def _per_chunk(self, chunk_ids: Sequence[int], sql: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for part in _parts(chunk_ids):
            rows = self.execute(sql.format(_marks(part)), part)
            out.update((int(chunk_id), value) for chunk_id, value in rows)
        return out

    def search_texts(self, collection_id: int) -> Iterator[tuple[int, str]]:
        """(chunk id, title + headings + body) of every chunk of a collection, streamed."""
        rows = self.execute(
            "SELECT c.id, d.title, c.heading_path, "
            'substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c '
            "JOIN documents d ON d.id = c.document_id WHERE d.collection_id = ? ORDER BY c.id",
            (collection_id,),
        )
        for chunk_id, title, headings, body in rows:
            yield chunk_id, "\n".join([title, " ".join(json.loads(headings)), body])

    # -- ingest runs -----------------------------------------------------------------

    def start_run(self, collection_id: int, worker: str = "") -> int:
        """A run "running" until it finishes; ``worker`` (host:pid) kept in its counts
        until then, for :meth:`interrupt_runs`."""
        row = self.execute(
            "INSERT INTO ingest_runs (collection_id, started_at, status, counts) "
            "VALUES (?, ?, 'running', ?) RETURNING id",
            (collection_id, now(), json.dumps({"worker": worker} if worker else {})),
        ).fetchone()
        return int(row[0])

    def interrupt_runs(self, gone: Callable[[str], bool]) -> int:
        """Mark "interrupted" each run still "running" whose worker is ``gone`` (killed
        before it could say so); its counts become what it kept: the documents of its
        collection stored since it started, and their chunks. The runs marked."""
        rows = self.execute(
            "SELECT id, collection_id, started_at, counts FROM ingest_runs WHERE status = 'running'"
        ).fetchall()
        marked = 0
        for run_id, collection_id, started, counts in rows:
            worker = json.loads(counts or "{}").get("worker", "")
            if not worker or not gone(worker):
                continue
            documents, chunks = self.execute(
                "SELECT count(DISTINCT d.id), count(c.id) FROM documents d "
                "LEFT JOIN chunks c ON c.document_id = d.id "
                "WHERE d.collection_id = ? AND d.updated_at >= ?",
                (collection_id, started),
            ).fetchone()
            kept = {"kept_documents": int(documents), "kept_chunks": int(chunks)}
            self.execute(
                "UPDATE ingest_runs SET status = 'interrupted', counts = ? "
                "WHERE id = ? AND status = 'running'",
                (json.dumps(kept), run_id),
            )
            marked += 1
        return marked

    def record_failure(self, run_id: int, source: str, reason: str) -> None:
        self.execute("INSERT INTO ingest_failures VALUES (?, ?, ?)", (run_id, source, reason))

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        self.execute(
            "UPDATE ingest_runs SET finished_at = ?, status = ?, counts = ? WHERE id = ?",
            (now(), status, json.dumps(counts), run_id),
        )

    def last_runs(self) -> list[dict[str, Any]]:
        """The latest ingest run of each collection, with its failures."""
        rows = self.execute(
            "SELECT r.id, k.name, r.started_at, r.finished_at, r.status, r.counts FROM ingest_runs r "
            "JOIN collections k ON k.id = r.collection_id WHERE r.id IN "
            "(SELECT max(id) FROM ingest_runs GROUP BY collection_id) ORDER BY k.name"
        ).fetchall()
        runs = []
        for run_id, name, started, finished, status, counts in rows:
            failures = self.execute(
                "SELECT source, reason FROM ingest_failures WHERE run_id = ?", (run_id,)
            ).fetchall()
            runs.append(
                {
                    "collection": name,
                    "started_at": started,
                    "finished_at": finished,
                    "status": status,
                    "counts": json.loads(counts),
                    "failures": [tuple(f) for f in failures],
                }
            )
        return runs

    def schema_version(self) -> list[str]:
        """The migrations applied, in order."""
        rows = self.execute("SELECT name FROM _migrations ORDER BY name")
        return [row[0] for row in rows]


def _eval_run(row: Sequence[Any]) -> dict[str, Any]:
    run_id, created, kind, dataset, queries, settings, metrics = row
    return {
        "id": int(run_id),
        "created": created,
        "kind": kind,
        "dataset": dataset,
        "queries": int(queries),
        "settings": json.loads(settings),
        "metrics": json.loads(metrics),
    }


# A key row's columns; its user "" when the key's user was removed.
_API_KEY_COLUMNS = (
    "k.name, k.prefix, k.collections, k.scopes, k.rpm, k.tpm, k.created_at, k.revoked_at, "
    "CASE WHEN k.user_id IS NULL THEN NULL ELSE coalesce(u.email, '') END"
)
_API_KEY_FROM = " FROM api_keys k LEFT JOIN users u ON u.id = k.user_id"

_DOCUMENT_RECORD_SQL = (
    "SELECT d.id, k.name, d.source, d.title, count(c.id), coalesce(sum(c.n_tokens), 0), "
    "d.updated_at, d.metadata FROM documents d JOIN collections k ON k.id = d.collection_id "
    "LEFT JOIN chunks c ON c.document_id = d.id"
)


def _document_record(row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        int(row[4]),
        int(row[5]),
        row[6],
        metadata=json.loads(row[7]),
    )


def _parts(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), ID_BATCH):
        yield [int(i) for i in ids[start : start + ID_BATCH]]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _split_access(node: Filter) -> tuple[ReadableBy | None, Filter | None]:
    """A filter's access part (a ReadableBy at its top, alone or in an And) and the rest."""
    if isinstance(node, ReadableBy):
        return node, None
    if isinstance(node, And):
        access = [p for p in node.parts if isinstance(p, ReadableBy)]
        if len(access) == 1:
            rest = [p for p in node.parts if not isinstance(p, ReadableBy)]
            return access[0], (rest[0] if len(rest) == 1 else And(tuple(rest)) if rest else None)
    return None, None
