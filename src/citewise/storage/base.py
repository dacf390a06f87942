"""What the rest of citewise needs from storage, as small protocols by concern.

A backend (``sqlite.py``, the embedded default; ``postgres.py``, shared by server
replicas) implements all of them over one database; ``tests/test_storage.py`` and
``tests/test_storage_access.py`` are the conformance suite every backend passes. No SQL
lives outside the backend modules.

Every change to a document is one transaction, so an interrupted ingest leaves whole
documents or none; every write bumps the collection's ``generation``, which derived
indexes (vector and keyword indexes kept outside the database) compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..documents import Chunk, Document, Hit
from ..filters import Filter

if TYPE_CHECKING:
    from ..ledger import LedgerStore


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    embedder: str
    dim: int
    generation: int


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    collection: str
    source: str
    title: str
    chunks: int
    tokens: int
    updated_at: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SourceKindStats:
    """A collection's documents of one kind of source: ``file`` (a path on the server) or
    a connector's scheme (``slack``, ``https``, ``notion``, …)."""

    kind: str
    documents: int
    chunks: int
    bytes: int  # the sources' sizes where the store knows them (files); 0 otherwise
    updated_at: str | None  # the latest document write


@dataclass(frozen=True)
class DocumentState:
    id: int
    content_hash: str
    mtime_ns: int | None
    size: int | None


@dataclass(frozen=True)
class StoredDocument:
    """A document as a store holds it: what a migration copies."""

    document: Document
    chunks: list[Chunk]
    vectors: np.ndarray
    mtime_ns: int | None
    size: int | None


class CollectionStore(Protocol):
    def collections(self) -> list[Collection]: ...
    def collection(self, name: str) -> Collection | None: ...
    def create_collection(self, name: str, embedder: str, dim: int) -> Collection: ...
    def set_collection_embedder(self, collection_id: int, embedder: str, dim: int) -> None: ...
    def collection_settings(
        self, collection_id: int
    ) -> tuple[dict[str, Any], dict[str, Any]] | None: ...
    def set_collection_settings(
        self, collection_id: int, settings: dict[str, Any] | None, report: dict[str, Any]
    ) -> None: ...
    def counts(self, collection_id: int) -> tuple[int, int, int]:
        """(documents, chunks, tokens) in a collection."""
        ...

    def source_kinds(self, collection_id: int) -> list[SourceKindStats]:
        """A collection's documents grouped by the kind of their source (a file, or the
        scheme of a connector's source: ``slack://…`` is ``slack``), by kind."""
        ...


class DocumentStore(Protocol):
    """Documents, their chunks (spans of the document's text) and the chunks' vectors."""

    def document_state(self, collection_id: int, source: str) -> DocumentState | None: ...
    def touch_document(self, document_id: int, mtime_ns: int | None, size: int | None) -> None: ...
    def mark_document_stale(self, document_id: int) -> None:
        """Forget what the next ingest compares (content hash, mtime, size), so that it
        parses and embeds the document again; the document is searchable meanwhile."""
        ...

    def replace_document(
        self,
        collection_id: int,
        document: Document,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        mtime_ns: int | None = None,
        size: int | None = None,
    ) -> int:
        """Insert or replace a document, its chunks, vectors and keyword entries in one
        transaction; returns its id."""
        ...

    def delete_documents(self, collection_id: int, document_ids: Sequence[int]) -> None: ...
    def sources(self, collection_id: int) -> dict[str, int]: ...
    def list_documents(
        self,
        collection_id: int,
        limit: int = 100,
        offset: int = 0,
        readable_by: frozenset[str] | None = None,
    ) -> list[DocumentRecord]:
        """A page of a collection's documents in source order. With ``readable_by``, only
        the documents the holder of those principals may read (an empty set: the open
        ones), and ``offset`` and ``limit`` count those only; None: every document."""
        ...

    def document(self, collection_id: int, document_id: int) -> DocumentRecord | None: ...
    def document_text(self, document_id: int) -> str: ...
    def document_chunk_ids(self, document_id: int) -> list[int]: ...
    def chunk_ids(self, collection_id: int) -> list[int]: ...
    def hits(self, chunk_ids: Sequence[int]) -> dict[int, Hit]:
        """Stored chunks as unscored hits, by chunk id (missing ids are left out)."""
        ...

    def chunk_documents(self, chunk_ids: Sequence[int]) -> dict[int, int]: ...
    def chunk_sources(self, chunk_ids: Sequence[int]) -> dict[int, str]: ...
    def filtered_chunk_ids(self, collection_id: int, node: Filter) -> np.ndarray:
        """Chunks whose document passes the filter (filters.py says what it means)."""
        ...

    def search_texts(self, collection_id: int) -> Iterator[tuple[int, str]]:
        """(chunk id, title + headings + body) of every chunk, streamed."""
        ...

    def vectors(self, collection_id: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """All (chunk ids, unit vectors) of a collection, in id order."""
        ...

    def export_documents(self, collection_id: int) -> Iterator[StoredDocument]: ...

    def replace_embeddings(
        self,
        collection_id: int,
        ids: Sequence[int],
        vectors: np.ndarray | None,
        embedder: str,
        dim: int,
    ) -> None:
        """New vectors for ``ids`` and the collection's new embedder, in one transaction."""
        ...


class KeywordSearch(Protocol):
    keyword_index: str  # what status reports: fts5, postgres-bm25

    def keyword_search(
        self,
        query: str,
        collection_ids: Sequence[int],
        limit: int,
        where: Filter | None = None,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first, the title, headings and body weighted; only
        chunks of documents that pass ``where``."""
        ...

    def rebuild_keyword_index(self) -> None: ...


@runtime_checkable
class VectorSearch(Protocol):
    """Nearest chunks by cosine similarity; ``allowed`` restricts the search to those
    chunk ids and never returns fewer than ``k`` when ``k`` of them exist."""

    def search(
        self, collection: Collection, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def backend(self, collection: Collection) -> str: ...

    def refresh(self, collection: Collection) -> None:
        """After writes: build what should exist now (pgvector's HNSW index)."""
        ...

    def invalidate(self) -> None: ...


class KeyStore(Protocol):
    """API keys: rows are (name, prefix, collections, scopes, rpm, tpm, created, revoked,
    user) — ``user`` the e-mail address of the user a key belongs to, None for a service
    key, "" for a user that was removed (such a key is refused)."""

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
    ) -> bool: ...
    def api_key_rows(self, include_revoked: bool = False) -> list[tuple[Any, ...]]: ...
    def api_key_rows_with_prefix(self, prefix: str) -> list[tuple[tuple[Any, ...], str]]: ...
    def revoke_api_key(self, name: str) -> bool: ...
    def any_api_keys(self) -> bool: ...
    def export_api_keys(self) -> list[tuple[Any, ...]]: ...
    def import_api_key(self, row: Sequence[Any]) -> bool: ...


@dataclass(frozen=True)
class UserRecord:
    email: str  # lowercased: the user's identity
    name: str
    created_at: str
    aliases: tuple[str, ...] = ()  # other ids sources name the user by: slack:U123
    groups: tuple[str, ...] = ()  # group names, without the ``group:`` prefix


@dataclass(frozen=True)
class GroupRecord:
    name: str
    created_at: str
    members: tuple[str, ...] = ()  # e-mail addresses


@dataclass(frozen=True)
class DocumentAccess:
    """Who may read a document: everyone who reads its collection (``restricted`` False),
    or only the holders of ``principals`` (none, when the tuple is empty)."""

    restricted: bool
    principals: tuple[str, ...] = ()


class AccessStore(Protocol):
    """Users, groups, aliases and the access lists of documents.

    Identities are strings: a user is their e-mail address (lowercased), ``group:NAME`` a
    group, and other ids a source names people by (``slack:U123``) are aliases of a user.
    A document's access list is written with it (:attr:`Document.access`); what a caller
    may read is computed when it asks, so a change of membership applies at once.
    """

    def add_user(self, email: str, name: str = "") -> UserRecord: ...
    def remove_user(self, email: str) -> bool:
        """Removes the user, its memberships and aliases, and revokes its API keys."""
        ...

    def users(self) -> list[UserRecord]: ...
    def user(self, email: str) -> UserRecord | None: ...
    def add_group(self, name: str) -> GroupRecord: ...
    def remove_group(self, name: str) -> bool: ...
    def groups(self) -> list[GroupRecord]: ...
    def add_member(self, group: str, email: str) -> bool: ...
    def remove_member(self, group: str, email: str) -> bool: ...
    def add_alias(self, email: str, alias: str) -> bool: ...
    def remove_alias(self, alias: str) -> bool: ...
    def identities(self, email: str) -> frozenset[str]:
        """The principals a user acts as: the e-mail address, its aliases and ``group:G``
        for each of its groups (empty for an unknown user)."""
        ...

    def document_access(self, document_id: int) -> DocumentAccess: ...
    def access_counts(self, collection_id: int) -> dict[str, int]:
        """Documents open to the collection ("open") and restricted ("restricted")."""
        ...

    def readable_chunk_ids(self, collection_id: int, principals: frozenset[str]) -> np.ndarray:
        """Chunks of the documents the holder of ``principals`` may read."""
        ...

    def readable_counts(self, collection_id: int, principals: frozenset[str]) -> tuple[int, int]:
        """(documents, chunks) the holder of ``principals`` may read: what
        :meth:`readable_chunk_ids` covers, counted by the store rather than fetched."""
        ...


class RunStore(Protocol):
    """Ingest runs and the sources that failed in them."""

    def start_run(self, collection_id: int, worker: str = "") -> int: ...
    def record_failure(self, run_id: int, source: str, reason: str) -> None: ...
    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None: ...
    def interrupt_runs(self, gone: Callable[[str], bool]) -> int: ...
    def last_runs(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class JobRecord:
    id: str
    collection: str
    status: str  # queued | running | done | failed
    state: dict[str, Any]  # the job's files, progress and counts, as the server reports them
    attempts: int
    worker: str | None


class JobStore(Protocol):
    """Ingest jobs in the store, so any server replica may run one and every replica
    reports it; a replica holds a job by a lease it renews while it works."""

    def create_job(self, job_id: str, collection: str, state: dict[str, Any]) -> None: ...
    def claim_job(self, worker: str, lease_s: float, max_attempts: int) -> JobRecord | None: ...
    def save_job(
        self, job_id: str, worker: str, status: str, state: dict[str, Any], lease_s: float
    ) -> bool: ...
    def job(self, job_id: str) -> JobRecord | None: ...
    def jobs(
        self, status: str | None = None, limit: int = 100, collection: str | None = None
    ) -> list[JobRecord]:
        """The newest jobs first, of one status and one collection when given."""
        ...

    def job_counts(self) -> dict[str, int]: ...
    def unfinished_job_files(self) -> set[str]: ...
    def finished_job_files(self) -> dict[str, float]:
        """The files of every ended job: when the latest job naming each was queued."""
        ...

    def shared_secret(self, name: str) -> bytes: ...


class FeedbackStore(Protocol):
    def add_feedback(
        self,
        key_name: str,
        rating: int,
        question: str,
        answer: str,
        citations: list[dict[str, Any]],
        model: str | None,
        comment: str | None,
    ) -> int: ...
    def feedback(self) -> list[dict[str, Any]]: ...


class EvalRunStore(Protocol):
    """Evaluation runs (``citewise eval retrieval`` and ``eval answers``): their settings,
    summary metrics and per-query results, as JSON-able values."""

    def add_eval_run(
        self,
        kind: str,
        dataset: str,
        queries: int,
        settings: dict[str, Any],
        metrics: dict[str, Any],
        results: list[dict[str, Any]],
    ) -> int:
        """Store a run; its id."""
        ...

    def eval_runs(self, limit: int = 500, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest runs first (of one kind when given), without their per-query results: ``id``, ``created``,
        ``kind``, ``dataset``, ``queries``, ``settings``, ``metrics``."""
        ...

    def eval_run(self, run_id: int) -> dict[str, Any] | None:
        """One run with its per-query ``results``; None when there is no such run."""
        ...


class ReplicaStore(Protocol):
    """The server processes (replicas) sharing the store: each one records itself and
    renews ``last_seen`` while it runs."""

    def beat_replica(
        self, replica: str, host: str, address: str, version: str, schema: str, started: str
    ) -> None: ...
    def replicas(self, seen_since: float) -> list[dict[str, Any]]:
        """Replicas seen since ``seen_since`` (Unix time), the latest seen first: ``id``,
        ``host``, ``address``, ``version``, ``schema``, ``started``, ``last_seen`` (Unix
        time)."""
        ...


class KeyTrafficStore(Protocol):
    """Requests and 429 answers per key name, in hourly buckets every replica adds to (a
    server counts in memory and flushes its deltas every few seconds)."""

    def add_key_traffic(self, rows: Sequence[tuple[str, int, int, int, float]]) -> None:
        """Add ``(key name, hour, requests, rate_limited, last_seen)`` rows, all or none:
        ``hour`` is the Unix time its hour starts at; counts add to a bucket's (several
        replicas add up), ``last_seen`` (Unix time) keeps the later one."""
        ...

    def key_traffic(self, recent_hour: int) -> dict[str, dict[str, Any]]:
        """Per key name: ``requests`` and ``rate_limited`` in total, ``recent_requests`` and
        ``recent_rate_limited`` in buckets from ``recent_hour`` on, ``last_seen`` (Unix
        time). Keys never counted are absent."""
        ...


class Storage(
    CollectionStore,
    DocumentStore,
    KeywordSearch,
    KeyStore,
    AccessStore,
    RunStore,
    JobStore,
    FeedbackStore,
    EvalRunStore,
    ReplicaStore,
    KeyTrafficStore,
    Protocol,
):
    """Everything a workspace keeps, in one database."""

    url: str  # where it is, for status and doctor (no password)

    def vector_search(self, directory: Path, ann_threshold: int) -> VectorSearch:
        """The collections' vector search: the backend's own (pgvector), or indexes
        derived from :meth:`vectors` and kept under ``directory`` (``index/``)."""
        ...

    def ledger_store(self) -> LedgerStore:
        """The usage ledger and budgets, kept in this store's own database."""
        ...

    def integrity_problems(self) -> list[str]: ...
    def describe(self) -> str:
        """What and where the store is, its version and schema (no password)."""
        ...

    def schema_version(self) -> list[str]: ...
    def close(self) -> None: ...


class StorageFactory(Protocol):
    """What a storage backend registers (:func:`~citewise.storage.register_backend`): the
    store a URL names, given the workspace directory."""

    def __call__(self, url: str, workspace: Path, /) -> Storage: ...
