"""PostgreSQL with pgvector: one database shared by every ``citewise serve`` replica
(``pip install 'citewise[postgres]'``; ``store = "postgresql://user@host/db"``, the password
from ``PGPASSWORD`` or ``~/.pgpass``).

Tables live in the ``citewise`` schema and follow SQLite's (``sql.py`` holds the queries
both run). What differs:

- Vectors are pgvector columns. A collection above ``ann_threshold`` chunks gets its own
  partial HNSW index; below it, and for every filtered search, the search is exact — a
  filter applied after an HNSW scan (pgvector 0.6 has no iterative scans) returns fewer
  than k rows when the filter is selective, so filtered searches never use it.
- Keyword search is BM25 computed in SQL over a postings table (term, chunk, term
  frequency in the title, headings and body, chunk length): FTS5's formula (k1 1.2, b 0.75,
  its IDF, the columns weighted), its Porter stems, statistics kept per collection — where
  ``ts_rank`` has no IDF and no length normalisation of BM25's kind.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..documents import Chunk
from ..errors import ConfigError, Unavailable, WorkspaceError
from ..filters import Filter, Scalar
from ..keywords import _WORD, STOPWORDS, query_terms
from .base import Collection
from .sql import SqlStore, now

if TYPE_CHECKING:
    from ..ledger_store_postgres import PostgresLedgerStore

SCHEMA = "citewise"
log = logging.getLogger("citewise.store")
# A connection idle longer than this is pinged before use (one round trip).
IDLE_CHECK_S = 1.0
# TCP keepalives: a peer that vanished without closing (a host down, a dropped route) is
# noticed in about 30 s instead of the kernel's two hours.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
K1, B = 1.2, 0.75  # FTS5's
# Most rows an HNSW scan may return (pgvector's hnsw.ef_search limit).
MAX_EF_SEARCH = 1000

_MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "_m001_initial",
        (
            """CREATE TABLE collections (
            id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, embedder TEXT NOT NULL,
            dim INTEGER NOT NULL, generation BIGINT NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
            chunk_count BIGINT NOT NULL DEFAULT 0, term_count BIGINT NOT NULL DEFAULT 0)""",
            """CREATE TABLE documents (
            id BIGSERIAL PRIMARY KEY, collection_id BIGINT NOT NULL REFERENCES collections(id),
            source TEXT NOT NULL, title TEXT NOT NULL, content_hash TEXT NOT NULL,
            mtime_ns BIGINT, size BIGINT, text TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
            updated_at TEXT NOT NULL, UNIQUE (collection_id, source))""",
            """CREATE TABLE chunks (
            id BIGSERIAL PRIMARY KEY, document_id BIGINT NOT NULL REFERENCES documents(id),
            collection_id BIGINT NOT NULL, ord INTEGER NOT NULL, start INTEGER NOT NULL,
            "end" INTEGER NOT NULL, page INTEGER, heading_path TEXT NOT NULL,
            n_tokens INTEGER NOT NULL, n_terms INTEGER NOT NULL, embedding vector NOT NULL)""",
            "CREATE INDEX chunks_by_document ON chunks(document_id)",
            "CREATE INDEX chunks_by_collection ON chunks(collection_id)",
            """CREATE TABLE chunk_terms (
            collection_id BIGINT NOT NULL, term TEXT NOT NULL, chunk_id BIGINT NOT NULL,
            tf_title REAL NOT NULL, tf_headings REAL NOT NULL, tf_body REAL NOT NULL,
            dl INTEGER NOT NULL)""",
            """CREATE INDEX chunk_terms_by_term ON chunk_terms(collection_id, term)
            INCLUDE (chunk_id, tf_title, tf_headings, tf_body, dl)""",
            "CREATE INDEX chunk_terms_by_chunk ON chunk_terms(chunk_id)",
            """CREATE TABLE ingest_runs (
            id BIGSERIAL PRIMARY KEY, collection_id BIGINT NOT NULL REFERENCES collections(id),
            started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}')""",
            """CREATE TABLE ingest_failures (
            run_id BIGINT NOT NULL REFERENCES ingest_runs(id), source TEXT NOT NULL,
            reason TEXT NOT NULL)""",
            """CREATE TABLE api_keys (
            id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
            hash TEXT NOT NULL, collections TEXT NOT NULL, scopes TEXT NOT NULL, rpm INTEGER,
            tpm INTEGER, created_at TEXT NOT NULL, revoked_at TEXT)""",
            "CREATE INDEX api_keys_by_prefix ON api_keys(prefix)",
            """CREATE TABLE feedback (
            id BIGSERIAL PRIMARY KEY, key_name TEXT, rating INTEGER NOT NULL,
            question TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL, model TEXT,
            comment TEXT, created_at TEXT NOT NULL)""",
            """CREATE TABLE collection_settings (
            collection_id BIGINT PRIMARY KEY REFERENCES collections(id), settings TEXT NOT NULL,
            report TEXT NOT NULL, tuned_at TEXT NOT NULL)""",
        ),
    ),
    (
        "_m002_jobs",
        (
            """CREATE TABLE jobs (
            id TEXT PRIMARY KEY, collection TEXT NOT NULL, status TEXT NOT NULL,
            state TEXT NOT NULL, worker TEXT, lease_until DOUBLE PRECISION,
            attempts INTEGER NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX jobs_by_status ON jobs(status, created_at)",
            "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
    (
        "_m003_metadata_index",
        (
            """CREATE INDEX documents_by_metadata ON documents
            USING gin ((metadata::jsonb) jsonb_path_ops)""",
        ),
    ),
    (
        # Users, groups, aliases and who may read each document (as SQLite's _m008_access).
        "_m004_access",
        (
            "CREATE TABLE principals (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            """CREATE TABLE users (
            id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL)""",
            """CREATE TABLE groups (
            id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)""",
            """CREATE TABLE group_members (
            group_id BIGINT NOT NULL REFERENCES groups(id),
            user_id BIGINT NOT NULL REFERENCES users(id), PRIMARY KEY (group_id, user_id))""",
            "CREATE INDEX group_members_by_user ON group_members(user_id)",
            """CREATE TABLE user_aliases (
            alias TEXT NOT NULL UNIQUE, user_id BIGINT NOT NULL REFERENCES users(id))""",
            "CREATE INDEX user_aliases_by_user ON user_aliases(user_id)",
            """CREATE TABLE document_access (
            document_id BIGINT NOT NULL REFERENCES documents(id),
            principal_id BIGINT NOT NULL REFERENCES principals(id),
            PRIMARY KEY (document_id, principal_id))""",
            "CREATE INDEX document_access_by_principal ON document_access(principal_id, document_id)",
            "ALTER TABLE documents ADD COLUMN restricted BOOLEAN NOT NULL DEFAULT false",
            "CREATE INDEX documents_by_access ON documents(collection_id, restricted)",
            # Conversations and mail stored before access lists existed are closed to users
            # until their export is ingested again (which writes their members).
            "UPDATE documents SET restricted = true "
            "WHERE source LIKE 'slack://%%' OR source LIKE 'gmail://%%'",
            "ALTER TABLE api_keys ADD COLUMN user_id BIGINT",
            "CREATE INDEX api_keys_by_user ON api_keys(user_id)",
        ),
    ),
    (
        # Evaluation runs and the replicas sharing the store (as SQLite's _m010_eval_runs).
        "_m005_eval_runs",
        (
            """CREATE TABLE IF NOT EXISTS eval_runs (
            id BIGSERIAL PRIMARY KEY, created_at TEXT NOT NULL, kind TEXT NOT NULL,
            dataset TEXT NOT NULL, queries INTEGER NOT NULL, settings TEXT NOT NULL,
            metrics TEXT NOT NULL, results TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS replicas (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, address TEXT NOT NULL,
            version TEXT NOT NULL, schema_version TEXT NOT NULL, started_at TEXT NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS replicas_by_last_seen ON replicas(last_seen)",
        ),
    ),
    (
        # Requests and 429s per key and hour (as SQLite's _m011_key_traffic).
        "_m006_key_traffic",
        (
            """CREATE TABLE IF NOT EXISTS key_traffic (
            key_name TEXT NOT NULL, hour BIGINT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0, rate_limited BIGINT NOT NULL DEFAULT 0,
            last_seen DOUBLE PRECISION NOT NULL, PRIMARY KEY (key_name, hour))""",
            "CREATE INDEX IF NOT EXISTS key_traffic_by_hour ON key_traffic(hour)",
        ),
    ),
]


class PostgresStore(SqlStore):
    """One connection per thread, in autocommit mode outside :meth:`transaction`."""

    keyword_index = "postgres-bm25"
    # Replicas claiming jobs at once each get a different one instead of waiting.
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self._psycopg = psycopg_module()
        from pgvector.psycopg import register_vector

        self._register_vector = register_vector
        self.url = url
        self._open_connections()
        self._migrate()

    # -- connections and transactions ---------------------------------------------------

    def _connect(self) -> Any:
        """A new connection, set up. A server that cannot be reached is :class:`Unavailable`
        (retry later); one that refuses our credentials is a configuration error (retrying
        cannot help). Driver messages name the host and user: the log has them."""
        psycopg = self._psycopg
        try:
            connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5, **KEEPALIVES)
        except psycopg.OperationalError as exc:
            if (getattr(exc, "sqlstate", None) or "").startswith("28"):
                log.warning("the store %s refused the login: %s", _where(self.url), exc)
                raise ConfigError(
                    "the store (PostgreSQL) refused the login: check the user in `store` and "
                    "the password in PGPASSWORD or ~/.pgpass"
                ) from exc
            raise self._unavailable(exc) from exc
        except psycopg.Error as exc:
            log.warning("cannot connect to the store %s: %s", _where(self.url), exc)
            raise WorkspaceError("cannot connect to the store (PostgreSQL)") from exc
        try:
            self._set_up(connection)
        except psycopg.OperationalError as exc:  # the server went away meanwhile
            connection.close()
            raise self._unavailable(exc) from exc
        return connection

    def _set_up(self, connection: Any) -> None:
        errors = self._psycopg.errors
        # Replicas starting together race to create these: one wins, the rest find them.
        with suppress(errors.UniqueViolation, errors.DuplicateSchema):
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        connection.execute(f"SET search_path TO {SCHEMA}, public")
        try:
            with suppress(errors.UniqueViolation, errors.DuplicateObject):
                connection.execute("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
            self._register_vector(connection)
        except self._psycopg.OperationalError:
            raise
        except self._psycopg.Error as exc:
            connection.close()
            log.warning("pgvector is missing in the store %s: %s", _where(self.url), exc)
            raise ConfigError(
                "the store (PostgreSQL) needs the pgvector extension (install pgvector and "
                "let a superuser run `CREATE EXTENSION vector`)"
            ) from exc

    @property
    def db(self) -> Any:
        """This thread's connection; one that sat idle is pinged first (outside a
        transaction), so a connection a restart or a proxy closed meanwhile is replaced
        before a statement meets it."""
        connection = self._thread_connection()
        now = time.monotonic()
        idle = now - getattr(self._local, "used", now)
        if idle > IDLE_CHECK_S and not self._pending_counters():
            try:
                connection.execute("SELECT 1")
            except self._psycopg.OperationalError:
                self._forget_connection()
                connection = self._thread_connection()
        self._local.used = time.monotonic()
        return connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Outside a transaction, a statement that meets a dead connection runs once more
        on a fresh one — a read always; a write only when the server said it ended the
        session before the statement (57P01-57P03: it was never run), since a write whose
        connection broke mid-way may have committed. Inside a transaction, the transaction
        is lost and the caller hears :class:`Unavailable`."""
        sql = sql.replace("?", "%s")
        connection = self.db
        try:
            return connection.execute(sql, params)
        except self._psycopg.OperationalError as exc:
            if not self._lost(exc, connection):
                raise  # a statement timeout or a lock: the connection itself is fine
            self._forget_connection()
            if self._pending_counters() or not self._safe_to_repeat(sql, exc):
                raise self._unavailable(exc) from exc
            fresh = self.db
            try:
                return fresh.execute(sql, params)
            except self._psycopg.OperationalError as again:
                if not self._lost(again, fresh):
                    raise
                self._forget_connection()
                raise self._unavailable(again) from again

    @staticmethod
    def _safe_to_repeat(sql: str, exc: Exception) -> bool:
        read = sql.lstrip().split(None, 1)[0].upper() in ("SELECT", "WITH")
        return read or (getattr(exc, "sqlstate", None) or "") in ("57P01", "57P02", "57P03")

    @staticmethod
    def _lost(exc: Exception, connection: Any) -> bool:
        """Whether an error means the connection is gone (class 08, or the server shutting
        down: 57P01-57P03) rather than the statement failing on a live connection."""
        state = getattr(exc, "sqlstate", None) or ""
        return (
            connection.closed
            or connection.broken
            or state.startswith("08")
            or state in ("57P01", "57P02", "57P03")
        )

    def _forget_connection(self) -> None:
        """Drops this thread's connection; the next statement opens a new one."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._connections_lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            with suppress(Exception):
                connection.close()

    def _unavailable(self, exc: Exception) -> Unavailable:
        # The driver's words name the host, port, user and database: logged, not returned.
        log.warning("the store %s cannot be reached: %s", _where(self.url), exc)
        return Unavailable("store", "the store (PostgreSQL) cannot be reached; retry shortly")

    def _begin(self, exits: ExitStack, outermost: bool) -> Any:
        """Enters a transaction; the outermost one retries once on a fresh connection
        when BEGIN meets a dead one (nothing has run in it yet)."""
        for attempt in range(2):
            connection = self.db
            try:
                exits.enter_context(connection.transaction())
                return connection
            except self._psycopg.OperationalError as exc:
                if not self._lost(exc, connection):
                    raise
                self._forget_connection()
                if attempt or not outermost:
                    raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Counter changes (generation, chunk and term counts) are summed per collection
        and written once at commit: updating one row per document in a long transaction
        piles up row versions PostgreSQL cannot prune until it ends, and each update then
        walks them (1,000 documents a transaction ran at half the speed of one).

        A nested transaction is a savepoint whose counter changes are dropped with it."""
        stack = self._pending_counters()
        stack.append(Counter())
        try:
            with ExitStack() as exits:
                db = self._begin(exits, outermost=len(stack) == 1)
                yield db
                if len(stack) == 1:
                    self._write_counters(stack[0])
        except self._psycopg.OperationalError as exc:
            stack.pop()
            connection = getattr(self._local, "connection", None)
            if connection is not None and not self._lost(exc, connection):
                raise
            self._forget_connection()
            raise self._unavailable(exc) from exc
        except BaseException:
            stack.pop()
            raise
        changes = stack.pop()
        if stack:
            stack[-1].update(changes)

    def _pending_counters(self) -> list[Counter[tuple[int, str]]]:
        stack = getattr(self._local, "counters", None)
        if stack is None:
            stack = self._local.counters = []
        return stack

    def _add_to_counters(self, collection_id: int, **changes: int) -> None:
        """Adds to the open transaction's counter changes for a collection."""
        stack = self._pending_counters()
        if not stack:
            raise RuntimeError("collection counters change only inside a transaction")
        stack[-1].update({(collection_id, name): n for name, n in changes.items()})

    def _write_counters(self, changes: Counter[tuple[int, str]]) -> None:
        for collection_id in sorted({cid for cid, _ in changes}):
            self.execute(
                "UPDATE collections SET generation = generation + ?, "
                "chunk_count = chunk_count + ?, term_count = term_count + ? WHERE id = ?",
                (
                    changes[(collection_id, "generation")],
                    changes[(collection_id, "chunks")],
                    changes[(collection_id, "terms")],
                    collection_id,
                ),
            )

    def _bump(self, collection_id: int) -> None:
        # Writers to one collection still queue on its row; the lock adds no row version.
        self.execute("SELECT 1 FROM collections WHERE id = ? FOR UPDATE", (collection_id,))
        self._add_to_counters(collection_id, generation=1)

    def _migrate(self) -> None:
        with self.transaction():
            # One migrator at a time, whichever replica starts first.
            self.execute("SELECT pg_advisory_xact_lock(hashtextextended('citewise-migrate', 0))")
            self.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in self.execute("SELECT name FROM _migrations")}
            for name, statements in _MIGRATIONS:
                if name not in applied:
                    for statement in statements:
                        self.execute(statement)
                    self.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now()))

    def _intern_principals(self, names: Sequence[str]) -> None:
        """New identities are committed at once, on a connection of their own: inside a
        writer's transaction (a bulk ingest) a new name would hold every other writer
        naming it until that transaction ends, and two writers each holding a name the
        other needs would deadlock. A name whose document then rolls back stays, unused."""
        connection = getattr(self._local, "interning", None)
        if connection is None or connection.closed:
            connection = self._local.interning = self._connect()
            with self._connections_lock:
                self._connections.append(connection)
        try:
            connection.execute(
                "INSERT INTO principals (name) SELECT n FROM unnest(%s::text[]) AS n ORDER BY n "
                "ON CONFLICT (name) DO NOTHING",
                (sorted(names),),
            )
        except self._psycopg.OperationalError as exc:
            self._local.interning = None
            with suppress(Exception):
                connection.close()
            raise self._unavailable(exc) from exc

    # -- chunks: pgvector columns and postings ---------------------------------------------

    def _insert_chunks(
        self,
        collection_id: int,
        document_id: int,
        title: str,
        text: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
    ) -> None:
        title_terms = Counter(_terms(title))
        title_length = len(_tokens(title))
        rows, counts = [], []
        for chunk, vector in zip(chunks, vectors, strict=True):
            headings = " ".join(chunk.heading_path)
            body = text[chunk.start : chunk.end]
            length = title_length + len(_tokens(headings)) + len(_tokens(body))
            rows.append(
                (
                    document_id,
                    collection_id,
                    chunk.ord,
                    chunk.start,
                    chunk.end,
                    chunk.page,
                    json.dumps(chunk.heading_path),
                    chunk.n_tokens,
                    length,
                    np.asarray(vector, dtype=np.float32),
                )
            )
            counts.append((length, Counter(_terms(headings)), Counter(_terms(body))))
        if not rows:
            return
        with self.db.cursor() as cursor:
            # One round trip for the chunks (a pipeline), one COPY for their postings.
            cursor.executemany(
                'INSERT INTO chunks (document_id, collection_id, ord, start, "end", page, '
                "heading_path, n_tokens, n_terms, embedding) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                rows,
                returning=True,
            )
            ids = []
            while True:
                ids.append(cursor.fetchone()[0])
                if not cursor.nextset():
                    break
            with cursor.copy(
                "COPY chunk_terms (collection_id, term, chunk_id, tf_title, tf_headings, tf_body, dl) "
                "FROM STDIN"
            ) as copy:
                for chunk_id, (length, head_terms, body_terms) in zip(ids, counts, strict=True):
                    for term in title_terms.keys() | head_terms.keys() | body_terms.keys():
                        copy.write_row(
                            (
                                collection_id,
                                term,
                                chunk_id,
                                title_terms[term],
                                head_terms[term],
                                body_terms[term],
                                length,
                            )
                        )
        self._add_to_counters(collection_id, chunks=len(chunks), terms=sum(c[0] for c in counts))

    def _delete_chunks(self, document_ids: Sequence[int]) -> None:
        ids = [int(i) for i in document_ids]
        removed = self.execute(
            "SELECT collection_id, count(*), coalesce(sum(n_terms), 0) FROM chunks "
            "WHERE document_id = ANY(?) GROUP BY collection_id",
            (ids,),
        ).fetchall()
        self.execute(
            "DELETE FROM chunk_terms WHERE chunk_id IN "
            "(SELECT id FROM chunks WHERE document_id = ANY(?))",
            (ids,),
        )
        self.execute("DELETE FROM chunks WHERE document_id = ANY(?)", (ids,))
        for collection_id, count, terms in removed:
            self._add_to_counters(collection_id, chunks=-int(count), terms=-int(terms))

    def _store_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.db.cursor() as cursor:
            cursor.executemany(
                "UPDATE chunks SET embedding = %s WHERE id = %s",
                [
                    (np.asarray(v, dtype=np.float32), int(i))
                    for i, v in zip(ids, vectors, strict=True)
                ],
            )

    def _metadata_in(self, key: str, values: Sequence[Scalar]) -> tuple[str, list[Any]]:
        # JSON containment, so the GIN index (_m003) finds the documents; for the scalar
        # values a filter takes it is equality at the key (1 contains 1.0; true is not 1;
        # a list holding the value is not the value). Comparing the value at a path
        # parsed every document's metadata: a filter matching nothing among 100k documents
        # took 55 ms, now 0.1 ms; one keeping 10% costs the same (its rows are read anyway).
        contained = []
        for value in values:
            nested: Any = value
            for part in reversed(key.split(".")):
                nested = {part: nested}
            contained.append(json.dumps(nested))
        if not contained:
            return "FALSE", []
        if len(contained) == 1:
            return "((d.metadata::jsonb) @> ?::jsonb)", contained
        return "((d.metadata::jsonb) @> ANY(?::jsonb[]))", [contained]

    def _json_kind(self, key: str, kind: str) -> str:
        parts = key.split(".")
        tests = [f"jsonb_typeof((d.metadata::jsonb) #> {_path(parts)}) = '{kind}'"]
        # #> takes a part of digits as an index into a list; filters.py looks up keys only.
        tests += [
            f"jsonb_typeof((d.metadata::jsonb) #> {_path(parts[:n])}) = 'object'"
            for n in range(1, len(parts))
            if parts[n].isascii() and parts[n].isdigit()
        ]
        return "(" + " AND ".join(tests) + ")"

    def _json_value(self, key: str, kind: str) -> str:
        path = _path(key.split("."))
        if kind == "string":
            return f'((d.metadata::jsonb) #>> {path}) COLLATE "C"'  # by code point
        return f"((d.metadata::jsonb) #> {path})::{'numeric' if kind == 'number' else 'boolean'}"

    def _text_order(self, expression: str) -> str:
        return f'{expression} COLLATE "C"'

    def _source_condition(self) -> str:
        return "d.source ~ ?"

    def _position(self, text: str, needle: str) -> str:
        return f"strpos({text}, {needle})"

    def _source_parameter(self, glob: str) -> Any:
        return glob_regex(glob)

    def vectors(self, collection_id: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.execute(
            "SELECT id, embedding FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.asarray([_numpy(r[1]) for r in rows], dtype=np.float32).reshape(-1, dim)
        return ids, matrix

    def _vectors_of(self, chunk_ids: Sequence[int]) -> np.ndarray:
        rows = self.execute(
            "SELECT id, embedding FROM chunks WHERE id = ANY(?)", ([int(i) for i in chunk_ids],)
        )
        found = {r[0]: r[1] for r in rows}
        return (
            np.stack([_numpy(found[i]) for i in chunk_ids])
            if chunk_ids
            else np.zeros((0, 0), np.float32)
        )

    def vector_search(self, directory: Path, ann_threshold: int) -> PgVectorSearch:
        return PgVectorSearch(self, ann_threshold)  # in the database: nothing under directory

    def ledger_store(self) -> PostgresLedgerStore:
        from ..ledger_store_postgres import PostgresLedgerStore

        return PostgresLedgerStore(self.url)  # in this database, shared by server replicas

    # -- keyword search: BM25 over the postings ------------------------------------------

    def keyword_search(
        self,
        query: str,
        collection_ids: Sequence[int],
        limit: int,
        where: Filter | None = None,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> list[tuple[int, float]]:
        counts = Counter(stem(t) for t in query_terms(query))
        if not counts or not collection_ids:
            return []
        terms, repeats = list(counts), [counts[t] for t in counts]
        filters, params = self.filter_clause(where)
        join = (
            "JOIN chunks c ON c.id = t.chunk_id JOIN documents d ON d.id = c.document_id"
            if filters
            else ""
        )
        ids = [int(i) for i in collection_ids]
        rows = self.execute(
            f"""WITH q AS (SELECT * FROM unnest(?::text[], ?::int[]) AS q(term, repeats)),
            stats AS (SELECT greatest(sum(chunk_count), 1)::float8 AS n,
                             greatest(sum(term_count), 1)::float8 / greatest(sum(chunk_count), 1) AS avgdl
                      FROM collections WHERE id = ANY(?)),
            df AS (SELECT t.term, count(*)::float8 AS hits FROM chunk_terms t JOIN q USING (term)
                   WHERE t.collection_id = ANY(?) GROUP BY t.term),
            idf AS (SELECT df.term, q.repeats * greatest(ln((stats.n - df.hits + 0.5) / (df.hits + 0.5)), 1e-6) AS weight
                    FROM df JOIN q USING (term) CROSS JOIN stats)
            SELECT t.chunk_id, sum(idf.weight * w.tf * {K1 + 1}
                   / (w.tf + {K1} * (1 - {B} + {B} * t.dl / stats.avgdl))) AS score
            FROM idf JOIN chunk_terms t ON t.term = idf.term AND t.collection_id = ANY(?)
            CROSS JOIN stats
            CROSS JOIN LATERAL (SELECT ? * t.tf_title + ? * t.tf_headings + ? * t.tf_body AS tf) w
            {join}
            WHERE w.tf > 0 {filters}
            GROUP BY t.chunk_id ORDER BY score DESC, t.chunk_id LIMIT {int(limit)}""",
            [terms, repeats, ids, ids, ids, *weights, *params],
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def rebuild_keyword_index(self) -> None:
        """The postings are written with their chunks; their statistics are recounted."""
        with self.transaction():
            self.execute(
                "UPDATE collections k SET chunk_count = s.chunks, term_count = s.terms FROM "
                "(SELECT k2.id, count(c.id) AS chunks, coalesce(sum(c.n_terms), 0) AS terms "
                "FROM collections k2 LEFT JOIN chunks c ON c.collection_id = k2.id GROUP BY k2.id) s "
                "WHERE s.id = k.id"
            )

    # -- maintenance ---------------------------------------------------------------------

    def describe(self) -> str:
        server = self.execute("SHOW server_version").fetchone()[0]
        vector = self.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        return (
            f"PostgreSQL {server} at {_where(self.url)}, pgvector {vector[0] if vector else '-'}, "
            f"schema {self.schema_version()[-1]}"
        )

    def integrity_problems(self) -> list[str]:
        problems = []
        bad = self.execute(
            "SELECT count(*) FROM chunks c JOIN collections k ON k.id = c.collection_id "
            "WHERE vector_dims(c.embedding) != k.dim"
        ).fetchone()[0]
        if bad:
            problems.append(
                f"{bad} chunk vectors have the wrong dimension (run `citewise reindex`)"
            )
        drift = self.execute(
            "SELECT k.name FROM collections k LEFT JOIN chunks c ON c.collection_id = k.id "
            "GROUP BY k.id, k.name, k.chunk_count HAVING count(c.id) != k.chunk_count"
        ).fetchall()
        problems += [
            f"collection {r[0]}: keyword statistics are stale (run `citewise reindex`)"
            for r in drift
        ]
        return problems


class PgVectorSearch:
    """Nearest chunks in pgvector: exact below the collection's HNSW threshold and for
    every filtered search; the collection's partial HNSW index above it."""

    def __init__(self, store: PostgresStore, ann_threshold: int) -> None:
        self.store = store
        self.ann_threshold = ann_threshold

    def search(
        self, collection: Collection, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        vector = np.asarray(query, dtype=np.float32)
        if allowed is not None:
            return self._exact_among(vector, k, allowed)
        if self._has_hnsw(collection) and k <= MAX_EF_SEARCH:
            ids, scores = self._approximate(collection, vector, k)
            if len(ids) >= min(k, self._count(collection)):
                return ids, scores
        return self._exact(collection, vector, k)

    def _approximate(
        self, collection: Collection, vector: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        cast = f"vector({collection.dim})"
        with self.store.transaction():
            self.store.execute(f"SET LOCAL hnsw.ef_search = {max(40, k)}")
            rows = self.store.execute(
                f"SELECT id, -(embedding::{cast} <#> %b::{cast}) FROM chunks "
                f"WHERE collection_id = {int(collection.id)} "
                f"ORDER BY embedding::{cast} <#> %b::{cast} LIMIT {int(k)}",
                (vector, vector),
            ).fetchall()
        return _arrays(rows)

    # Exact searches order by the score, not by ``embedding::vector(n) <#> q`` as the HNSW
    # indexes are built, so the planner cannot use one: every row is scored and none is
    # filtered out late. Vectors go as binary (``%b``); LIMIT is a literal, which a
    # prepared statement's generic plan would otherwise not know.

    def _exact(
        self, collection: Collection, vector: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self.store.execute(
            "SELECT id, -(embedding <#> %b) AS score FROM chunks WHERE collection_id = ? "
            f"ORDER BY score DESC, id LIMIT {int(k)}",
            (vector, int(collection.id)),
        ).fetchall()
        return _arrays(rows)

    def _exact_among(
        self, vector: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(allowed) == 0:
            return _arrays([])
        rows = self.store.execute(
            "SELECT id, -(embedding <#> %b) AS score FROM chunks WHERE id = ANY(?) "
            f"ORDER BY score DESC, id LIMIT {int(k)}",
            (vector, [int(i) for i in allowed]),
        ).fetchall()
        return _arrays(rows)

    def _count(self, collection: Collection) -> int:
        row = self.store.execute(
            "SELECT chunk_count FROM collections WHERE id = ?", (int(collection.id),)
        ).fetchone()
        return int(row[0]) if row else 0

    def _index_name(self, collection: Collection) -> str:
        return f"chunks_hnsw_{int(collection.id)}_{int(collection.dim)}"

    def _has_hnsw(self, collection: Collection) -> bool:
        row = self.store.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = ? AND indexname = ?",
            (SCHEMA, self._index_name(collection)),
        ).fetchone()
        return row is not None

    def backend(self, collection: Collection) -> str:
        return "hnsw" if self._has_hnsw(collection) else "exact"

    def refresh(self, collection: Collection) -> None:
        """An HNSW index for a collection above the threshold (built once; pgvector keeps
        it up to date on every insert and delete)."""
        if self._count(collection) <= self.ann_threshold or self._has_hnsw(collection):
            return
        cast = f"vector({int(collection.dim)})"
        errors = self.store._psycopg.errors
        # Replicas finishing ingests at once may both get here: one builds, the other finds it.
        with suppress(errors.UniqueViolation, errors.DuplicateTable):
            self.store.execute(
                f"CREATE INDEX IF NOT EXISTS {self._index_name(collection)} ON chunks USING hnsw "
                f"((embedding::{cast}) vector_ip_ops) WHERE collection_id = {int(collection.id)}"
            )

    def invalidate(self) -> None:
        """Nothing is cached outside the database."""


def _numpy(vector: Any) -> np.ndarray:
    """A pgvector value as float32 (pgvector's Python package returns its own Vector)."""
    return np.asarray(
        vector.to_numpy() if hasattr(vector, "to_numpy") else vector, dtype=np.float32
    )


def _arrays(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    scores = np.fromiter((r[1] for r in rows), dtype=np.float32, count=len(rows))
    return ids, scores


# -- words, as FTS5's porter unicode61 tokenizer makes them ---------------------------------

_STEMMER: Any = None


def stem(word: str) -> str:
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("porter")
    return str(_STEMMER.stemWord(word))


def _tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _terms(text: str) -> list[str]:
    """Indexed terms: Porter stems of the words, stop words left out (queries drop them)."""
    return [stem(w) for w in _tokens(text) if w not in STOPWORDS]


def _path(parts: Sequence[str]) -> str:
    """A text[] literal for #> (the parts are checked keys: letters, digits, _), each part
    quoted so that one spelt NULL stays a key."""
    return "'{" + ",".join(f'"{part}"' for part in parts) + "}'"


def glob_regex(glob: str) -> str:
    """A PostgreSQL regular expression matching what SQLite's GLOB matches."""
    out, i = ["^"], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in glob[i + 1 :]:
            end = glob.index("]", i + 1)
            body = glob[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out) + "$"


def psycopg_module() -> Any:
    """psycopg, or the extra to install (every PostgreSQL backend needs it)."""
    try:
        import pgvector.psycopg  # noqa: F401 - the store's vectors need it too
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "PostgreSQL needs psycopg and pgvector; install them with "
            "`pip install 'citewise[postgres]'`"
        ) from exc
    return psycopg


def _where(url: str) -> str:
    from . import redacted

    return redacted(url)
