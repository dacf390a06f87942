"""The public entry point: a directory holding one SQLite database and a config file.

ws = Workspace.open("notes-ws")
ws.ingest(["~/notes"])
for hit in ws.search("how do I rotate the keys?"):
    print(hit.title, hit.location)
answer = ws.ask("How do I rotate the keys?")
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs

from .access import Caller, as_caller, readable_collection, readable_collections
from .agent import Library, agent_stream
from .answering import AnswerOptions, AnswerStream
from .config import (
    CONFIG_FILE,
    Settings,
    check_database_url,
    config_template,
    read_config_file,
    set_config_value,
    setting_from_env,
)
from .connectors import connector_for
from .conversation import standalone_question
from .documents import Answer, Hit
from .embedders import Embedder, embed_texts, load_embedder
from .errors import InvalidInput, NotFound, WorkspaceError
from .extraction import Extraction, extract
from .filters import Filter, Where, all_of, as_filter
from .index.sparse import SparseIndexes
from .ingest import AccessOverride, Ingestor, IngestReport, ProgressCallback, worker_gone
from .keys import ALL_COLLECTIONS
from .ledger import Ledger, LedgerStore
from .names import check_collection_name
from .providers.base import Message
from .retrieval import AllowedCache, Mode, RetrievalSettings, Retriever, check_embedder
from .sources import Skipped, SourceItem
from .storage import Collection, DocumentRecord, Storage, open_storage
from .storage.migrate import MigrationReport
from .storage.response_cache import CACHE_FILE, SqliteResponseCache
from .storage.sql_access import normalize_principal
from .storage.sqlite import DATABASE_FILE

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .providers.router import Router

DEFAULT_COLLECTION = "default"


def default_workspace_dir() -> Path:
    configured = setting_from_env("workspace", str)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("citewise")) / "default"


@dataclass(frozen=True)
class CollectionStatus:
    name: str
    embedder: str
    dim: int
    documents: int
    chunks: int
    tokens: int
    vector_index: str
    keyword_index: str = "fts5"
    # Documents open to everyone who reads the collection, and restricted to an access list.
    open_documents: int = 0
    restricted_documents: int = 0


@dataclass(frozen=True)
class WorkspaceStatus:
    path: Path
    disk_bytes: int
    collections: list[CollectionStatus]
    runs: list[dict[str, Any]]


class Workspace:
    def __init__(
        self,
        path: Path,
        settings: Settings,
        config: Mapping[str, Any] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.settings = settings
        # citewise.toml as parsed once when the workspace opened: its [models], [targets]
        # and [assistants] tables are read from here, never from a second parse.
        self.config: Mapping[str, Any] = (
            read_config_file(path / CONFIG_FILE) if config is None else config
        )
        # Where each setting came from (argument, environment, citewise.toml, default).
        self.sources: dict[str, str] = dict(sources or {})
        self.store: Storage = open_storage(settings.store, path)
        # Runs left "running" by a process that was killed: say so (and what they kept).
        self.store.interrupt_runs(worker_gone)
        self.ledger = Ledger(ledger_store(settings, self.store))  # every model call, budgets
        # Vector search in the database where it can (pgvector); else indexes derived from
        # the stored vectors, kept under index/.
        self.indexes = self.store.vector_search(path / "index", settings.ann_threshold)
        # A bm25s index for big collections (the store's keyword search answers below
        # sparse_threshold, and whenever the derived index is stale).
        self.sparse = SparseIndexes(self.store, path / "index", settings.sparse_threshold)
        self._embedders: dict[str, Embedder] = {}
        self._embedders_lock = threading.Lock()
        self._chat_models: dict[tuple[str, str, str, int], Router] = {}
        self._chat_models_lock = threading.Lock()
        self._masked_models: dict[tuple[Any, ...], Router] = {}
        self._allowed_cache = AllowedCache()
        # Model responses for assistants with response_cache = "exact": a SQLite file of
        # this directory (per replica on PostgreSQL), opened on first use.
        self.response_cache = SqliteResponseCache(
            path / CACHE_FILE, settings.response_cache_ttl, settings.response_cache_entries
        )

    @classmethod
    def open(
        cls, path: str | Path | None = None, create: bool = True, **settings: Any
    ) -> Workspace:
        """Open a workspace (created on first use unless ``create=False``)."""
        directory = Path(path).expanduser() if path else default_workspace_dir()
        config = read_config_file(directory / CONFIG_FILE)  # the one parse of this open
        # Refused before anything is created.
        loaded, sources = Settings.resolve(config, settings)
        if not (directory / DATABASE_FILE).exists() and not (directory / CONFIG_FILE).exists():
            if not create:
                raise WorkspaceError(
                    f"no workspace at {directory}; create one with `citewise init`"
                )
            init_workspace(directory)
        return cls(directory, loaded, config, sources)

    def close(self) -> None:
        self.store.close()
        self.response_cache.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collections and embedders ---------------------------------------------

    def embedder(self, spec: str | None = None) -> Embedder:
        spec = spec or self.settings.embedder
        with self._embedders_lock:
            if spec not in self._embedders:
                embedder = load_embedder(spec, self.settings, self.path, self.config)
                self._embedders[spec] = self._embedders[embedder.model_id] = embedder
            return self._embedders[spec]

    def use_embedder(self, embedder: Embedder, spec: str | None = None) -> None:
        """Serve ``spec`` (default: the configured embedder) with ``embedder``, e.g. a
        micro-batching wrapper shared by a server's requests."""
        with self._embedders_lock:
            self._embedders[spec or self.settings.embedder] = embedder
            self._embedders[embedder.model_id] = embedder

    def collection(self, name: str = DEFAULT_COLLECTION, create: bool = True) -> Collection:
        collection = self.store.collection(name)
        if collection is None:
            if not create:
                raise WorkspaceError(f"no collection named {name!r}; `citewise status` lists them")
            check_collection_name(name)
            embedder = self.embedder()
            collection = self.store.create_collection(name, embedder.model_id, embedder.dim)
        return collection

    def collections(self, names: Sequence[str] | None = None) -> list[Collection]:
        """The named collections; ``None`` means all of them, an empty list none."""
        if names is None:
            return self.store.collections()
        return [self.collection(name, create=False) for name in names]

    def _collection_embedder(self, collection: Collection) -> Embedder:
        # The configured embedder, never silently the collection's own: a collection
        # built with another model fails loudly (EmbedderMismatch) until reindexed —
        # unless its tuned settings name one (`citewise tune --finetune-embedder`).
        tuned = self.tuned_settings(collection)
        return self.embedder(tuned.embedder if tuned and tuned.embedder else None)

    # -- ingest ------------------------------------------------------------------

    def ingest(
        self,
        locations: str | Path | Iterable[str | Path],
        collection: str = DEFAULT_COLLECTION,
        progress: ProgressCallback | None = None,
        source: str | None = None,
        access: Sequence[str] | Literal["open"] | None = None,
        **options: Any,
    ) -> IngestReport:
        """Add or update documents from files, folders, exports (Slack, Notion, Gmail, Drive)
        or URLs; the connector is detected from each location unless ``source`` names it.

        Unchanged documents cost no parsing or embedding. An export or a crawl is a
        snapshot: documents that vanished from it are deleted. Files are deleted only by
        :meth:`sync`. ``access`` restricts every document written to these identities
        (e-mail addresses, ``group:NAME``), or opens them to the collection (``"open"``),
        replacing what the source says; by default each source's own access applies
        (Slack's private channels and DMs, a mailbox's owner), else the collection's.
        """
        return self._ingest(locations, collection, progress, source, options, False, access)

    def sync(
        self,
        locations: str | Path | Iterable[str | Path],
        collection: str = DEFAULT_COLLECTION,
        progress: ProgressCallback | None = None,
        source: str | None = None,
        access: Sequence[str] | Literal["open"] | None = None,
        **options: Any,
    ) -> IngestReport:
        """Like :meth:`ingest`, and also remove documents whose files are gone."""
        return self._ingest(locations, collection, progress, source, options, True, access)

    def _ingest(
        self,
        locations: str | Path | Iterable[str | Path],
        collection: str,
        progress: ProgressCallback | None,
        source: str | None,
        options: dict[str, Any],
        sync: bool,
        access: Sequence[str] | Literal["open"] | None = None,
    ) -> IngestReport:
        if isinstance(locations, str | Path):  # one location: "docs", not the letters of it
            locations = [locations]
        connectors = [connector_for(str(location), source, **options) for location in locations]

        def items() -> Iterator[SourceItem | Skipped]:
            for connector in connectors:
                yield from connector.items()

        def deletable() -> list[str]:
            return [
                scope
                for c in connectors
                if sync or c.name != "files"
                for scope in c.complete_scopes()
            ]

        # Files are listed up front (a known total gives the progress bar an ETA);
        # connectors stream, so an export is never held in memory whole.
        stream = list(items()) if all(c.name == "files" for c in connectors) else items()
        return self.add_items(stream, collection, progress, deletable, access)

    def add_items(
        self,
        items: Iterable[SourceItem | Skipped],
        collection: str = DEFAULT_COLLECTION,
        progress: ProgressCallback | None = None,
        delete_missing_under: list[str] | Callable[[], list[str]] | None = None,
        access: Sequence[str] | Literal["open"] | None = None,
    ) -> IngestReport:
        """Ingest items from any source (files, a dataset, a connector); ``access`` as
        :meth:`ingest` takes it."""
        target = self.collection(collection)
        embedder = self._collection_embedder(target)
        check_embedder(target, embedder)
        ingestor = Ingestor(
            self.store,
            target,
            embedder,
            self.settings.chunk_tokens,
            self.settings.chunk_overlap,
            self.settings.max_document_mb,
            access_override(access),
        )
        report = ingestor.run(items, progress, delete_missing_under)
        self.refresh_indexes(collection)
        return report

    def refresh_indexes(self, collection: str = DEFAULT_COLLECTION) -> None:
        """Bring a collection's indexes up to date: the derived keyword index (built above
        ``sparse_threshold`` chunks; until then, and whenever stale, FTS5 answers) and, in
        PostgreSQL, the HNSW index above ``ann_threshold``."""
        target = self.collection(collection, create=False)
        self.sparse.refresh(target)
        self.indexes.refresh(target)

    # -- search and ask ------------------------------------------------------------

    def retriever(self) -> Retriever:
        """Search over the workspace's collections, each with its tuned settings if any."""
        defaults = RetrievalSettings(
            fusion=self.settings.fusion,
            dense_weight=self.settings.dense_weight,
            min_relevance=self.settings.min_relevance,
        )
        return Retriever(
            self.store,
            self.indexes,
            self._collection_embedder,
            defaults,
            sparse=self.sparse,
            settings_for=self.tuned_settings,
            allowed_cache=self._allowed_cache,
        )

    def tuned_settings(self, collection: Collection) -> RetrievalSettings | None:
        """The collection's own retrieval settings (``citewise tune``), if it has any."""
        saved = self.store.collection_settings(collection.id)
        return RetrievalSettings.from_json(saved[0]) if saved else None

    def search(
        self,
        query: str,
        k: int = 10,
        collections: Sequence[str] | None = None,
        mode: Mode = "hybrid",
        where: Where = None,
        caller: Caller | str | None = None,
    ) -> list[Hit]:
        """Passages ranked for ``query``; ``where`` filters on document metadata
        (``{"year": {"$gte": 2020}}``: the JSON form of filters.py, or its tree).
        ``caller`` (default: the operator, reading everything) limits them to what it may
        read: its collections, and for a user the documents open to it — inside the
        retrieval query, before ranking."""
        who = as_caller(caller)
        found = self.collections(self._scoped(who, collections))
        condition = all_of(as_filter(where), who.document_filter())
        return self.retriever().search(query, found, k, mode, condition)

    def _scoped(self, who: Caller, collections: Sequence[str] | None) -> Sequence[str] | None:
        """The collections a caller's read covers (None: every collection, the operator's)."""
        if ALL_COLLECTIONS in who.collections:
            return collections
        return self.readable_collections(who, collections)

    def chat_model(self, settings: Settings | None = None) -> Router:
        """The chat model for ``settings`` (default: the workspace's), loaded once."""
        settings = settings or self.settings
        key = (settings.provider, settings.model, settings.base_url, settings.context_window)
        # An assistant may mask differently (redact*, per [assistants.NAME]): its own router,
        # sharing the loaded models.
        masking = (
            settings.redact,
            settings.redact_entities,
            settings.redact_block,
            settings.redact_phone_region,
            settings.redact_ner_model,
        )
        with self._chat_models_lock:
            if key not in self._chat_models:
                from .providers import load_chat_model

                model = load_chat_model(settings, self.path, self.config)
                model.ledger = self.ledger  # every call is recorded and budgeted
                model.response_cache = self.response_cache  # for requests that ask for it
                self._chat_models[key] = model
            if (key, masking) not in self._masked_models:
                from .redaction import RedactionPolicy

                self._masked_models[(key, masking)] = self._chat_models[key].with_redaction(
                    RedactionPolicy.from_settings(settings), settings.redact
                )
            return self._masked_models[(key, masking)]

    def ask_stream(
        self,
        question: str,
        collections: Sequence[str] | None = None,
        where: Where = None,
        history: Sequence[Message] = (),
        settings: Settings | None = None,
        caller: Caller | str | None = None,
        assistant: str = "",
        options: AnswerOptions | None = None,
    ) -> AnswerStream:
        """Stream an answer: iterate for text deltas, then read ``.answer``.

        ``history`` holds the conversation's earlier turns; a follow-up question is
        rewritten into a standalone one before retrieval. ``caller`` reads what it may (see
        :meth:`search`; a name: the operator, charged under it), and the model calls are
        charged to its name in the usage ledger (its budgets apply).
        ``options``: a client's instructions, JSON format and sampling options for the
        answer's model call.
        """
        where = as_filter(where)  # a bad filter is refused before any model call
        who = as_caller(caller)
        caller = who.name
        settings = settings or self.settings
        model = self.chat_model(settings)
        standalone = standalone_question(history, question, model, settings, caller, assistant)
        tuned = {self.tuned_settings(c) for c in self.collections(collections)}
        if len(tuned) == 1 and (own := tuned.pop()) is not None:
            settings = replace(settings, min_relevance=own.min_relevance)
        if settings.mode == "agent":  # the model searches for itself (agent.py)
            library = Library(
                lambda query, k: self.search(query, k, collections, "hybrid", where, who),
                lambda document_id: self.document_passages(document_id, who),
            )
            stream = agent_stream(standalone, library, model, settings, caller, assistant, options)
            return stream.start()
        cached = settings.response_cache == "exact" and not (options and options.no_cache)
        # Before the search: a write that lands between the two leaves the entry under the
        # generation it was retrieved at, which the next question no longer names.
        scope = self._cache_scope(who, collections, where) if cached else None
        hits = self.search(standalone, settings.top_k * 2, collections, "hybrid", where, who)
        if scope is not None:
            scope["chunks"] = [[hit.collection, hit.chunk_id] for hit in hits]
        return AnswerStream(
            standalone,
            hits,
            model,
            settings,
            caller,
            assistant,
            options,
            cache_scope=None if scope is None else json.dumps(scope, sort_keys=True),
        ).start()

    def _cache_scope(
        self, who: Caller, collections: Sequence[str] | None, where: Filter | None
    ) -> dict[str, Any]:
        """What of an answer's retrieval its response-cache key covers besides the prompt:
        who reads (name, user, principals, the key's collections and scopes), each
        collection searched at its index generation (every write bumps it), the filter."""
        searched = self.collections(self._scoped(who, collections))
        return {
            "caller": who.name,
            "user": who.user,
            "principals": sorted(who.principals),
            "grants": [sorted(who.collections), sorted(who.scopes)],
            "collections": [[c.name, c.id, c.generation] for c in searched],
            "where": repr(where),
        }

    def ask(
        self,
        question: str,
        collections: Sequence[str] | None = None,
        where: Where = None,
        history: Sequence[Message] = (),
        caller: Caller | str | None = None,
        assistant: str = "",
        no_cache: bool = False,
    ) -> Answer:
        """The whole answer; ``caller`` and ``assistant`` are charged in the usage ledger
        (their budgets apply). ``no_cache``: answer afresh, not from the response cache
        (``response_cache``; ``AnswerOptions.no_cache`` for :meth:`ask_stream`)."""
        options = AnswerOptions(no_cache=True) if no_cache else None
        stream = self.ask_stream(
            question,
            collections,
            where,
            history,
            caller=caller,
            assistant=assistant,
            options=options,
        )
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def extract(
        self,
        instruction: str,
        schema: dict[str, Any] | type[BaseModel],
        collections: Sequence[str] | None = None,
        where: Where = None,
        caller: Caller | str | None = None,
        settings: Settings | None = None,
        retries: int = 2,
    ) -> Extraction:
        """A value of ``schema`` (a JSON Schema dict or a Pydantic model class) from the
        passages ``instruction`` finds, each field citing the passages it comes from.

        ``data`` is valid against ``schema`` (``obj`` the Pydantic instance);
        ``citations[field]`` holds each supporting passage with its quoted span. With no
        relevant passage the model is not asked: ``refused``, ``data`` None and a warning.
        An invalid reply is asked for again with its problem, ``retries`` times, then
        :class:`~citewise.errors.ExtractionFailed` (``.raw``: the last reply). The model
        call is charged to ``caller`` in the usage ledger.
        """
        settings = settings or self.settings
        model = self.chat_model(settings)
        who = as_caller(caller)
        hits = self.search(instruction, settings.top_k * 2, collections, "hybrid", where, who)
        tuned = {self.tuned_settings(c) for c in self.collections(collections)}
        if len(tuned) == 1 and (own := tuned.pop()) is not None:  # as ask_stream does
            settings = replace(settings, min_relevance=own.min_relevance)
        return extract(instruction, schema, hits, model, settings, who.name, retries)

    # -- documents, as a caller may read them -------------------------------------

    def readable_collections(
        self,
        caller: Caller | str | None = None,
        requested: Sequence[str] | None = None,
        defaults: Sequence[str] = (),
    ) -> list[str]:
        """The collections a read covers: those requested (else ``defaults``), each of
        which the caller must hold, or every collection it holds."""
        existing = [c.name for c in self.store.collections()]
        return readable_collections(as_caller(caller), existing, requested, defaults)

    def document(
        self, collection: str, document_id: int, caller: Caller | str | None = None
    ) -> DocumentRecord:
        """One document the caller may read. One it may not is "not found", like one that
        does not exist: its existence is not the caller's to learn."""
        who = as_caller(caller)
        target = readable_collection(who, self.store, collection)
        record = self.store.document(target.id, document_id)
        if record is None or not self._may_read(who, document_id):
            raise NotFound(
                f"No document {document_id} in '{collection}'", code="document_not_found"
            )
        return record

    def document_text(
        self, collection: str, document_id: int, caller: Caller | str | None = None
    ) -> str:
        """The whole text of a document the caller may read (:meth:`document`)."""
        self.document(collection, document_id, caller)
        return self.store.document_text(document_id)

    def documents(
        self,
        collection: str,
        caller: Caller | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DocumentRecord]:
        """A page of the documents of a collection the caller may read: ``offset`` and
        ``limit`` count readable documents only."""
        who = as_caller(caller)
        target = readable_collection(who, self.store, collection)
        # The store filters and pages in one query; a caller that is no user reads all.
        readable_by = None if who.user is None else who.principals
        return self.store.list_documents(target.id, limit, offset, readable_by)

    def readable_counts(
        self, collection: str, caller: Caller | str | None = None
    ) -> tuple[int, int]:
        """(documents, passages) of a collection that the caller may read: a count that
        took in documents it may not read would tell it they exist."""
        who = as_caller(caller)
        target = readable_collection(who, self.store, collection)
        if who.user is None:
            documents, chunks, _ = self.store.counts(target.id)
            return documents, chunks
        return self.store.readable_counts(target.id, who.principals)

    def _may_read(self, caller: Caller, document_id: int) -> bool:
        if caller.user is None:
            return True
        try:
            access = self.store.document_access(document_id)
        except NotFound:  # gone (deleted since it was listed or found): nothing to read
            return False
        return caller.can_read(access.restricted, access.principals)

    # -- maintenance -------------------------------------------------------------

    def reindex(self, collection: str, embedder: str | None = None) -> int:
        """Re-embed every chunk of a collection with ``embedder`` (default: the configured one)."""
        target = self.collection(collection, create=False)
        new = self.embedder(embedder)
        ids, texts = self.chunk_texts(target)
        vectors = embed_texts(new, texts) if texts else None
        self.store.replace_embeddings(target.id, ids, vectors, new.model_id, new.dim)
        self.store.rebuild_keyword_index()
        self.indexes.invalidate()
        self.refresh_indexes(collection)
        return len(ids)

    def migrate(
        self, to: str, switch: bool = True, progress: Callable[[str], None] | None = None
    ) -> MigrationReport:
        """Copy this workspace's store (and its ledger, unless ``ledger_url`` already shares
        one) to ``to`` as stored — nothing is parsed or embedded again; with ``switch``, the
        workspace's config then names ``to`` as its store."""
        from .storage.migrate import copy_store

        check_database_url(to, "the target store", ("postgresql", "postgres"))
        target = open_storage(to, self.path)
        try:
            ledgers: tuple[LedgerStore | None, LedgerStore | None] = (None, None)
            if not self.settings.ledger_url:
                ledgers = (
                    self.ledger.store,
                    ledger_store(replace(self.settings, store=to), target),
                )
            report = copy_store(self.store, target, *ledgers, progress=progress)
        finally:
            target.close()
        if switch:
            set_config_value(self.path / CONFIG_FILE, "store", to)
        return report

    def chunk_texts(self, collection: Collection) -> tuple[list[int], list[str]]:
        """Every chunk id of a collection and the text its embedder sees."""
        from .ingest import embedding_text

        ids = self.store.chunk_ids(collection.id)
        rows = self.store.hits(ids)
        texts = [embedding_text(rows[i].title, rows[i].heading_path, rows[i].text) for i in ids]
        return ids, texts

    def document_passages(self, document_id: int, caller: Caller | str | None = None) -> list[Hit]:
        """A document's chunks as unscored hits, in document order (none when the caller
        may not read it, or not its collection)."""
        who = as_caller(caller)
        if not self._may_read(who, document_id):
            return []
        ids = self.store.document_chunk_ids(document_id)
        rows = self.store.hits(ids)
        return [rows[i] for i in ids if i in rows and who.allows_collection(rows[i].collection)]

    def status(self) -> WorkspaceStatus:
        collections = []
        for c in self.store.collections():
            documents, chunks, tokens = self.store.counts(c.id)
            index = "hnsw" if chunks > self.settings.ann_threshold else "exact"
            keyword = "bm25s" if self.sparse.current(c) is not None else self.store.keyword_index
            access = self.store.access_counts(c.id)
            collections.append(
                CollectionStatus(
                    c.name,
                    c.embedder,
                    c.dim,
                    documents,
                    chunks,
                    tokens,
                    index,
                    keyword,
                    access.get("open", 0),
                    access.get("restricted", 0),
                )
            )
        disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return WorkspaceStatus(self.path, disk, collections, self.store.last_runs())


def access_override(access: Sequence[str] | Literal["open"] | None) -> AccessOverride | None:
    """An ingest's ``access`` argument, checked: identities are e-mail addresses (any
    case) or ``group:NAME`` or a source's alias (``slack:U123``)."""
    if access is None:
        return None
    if access == "open":
        return AccessOverride(None)
    if isinstance(access, str):  # one identity, not its characters
        access = [access]
    principals = tuple(dict.fromkeys(normalize_principal(a) for a in access))
    if not principals:
        raise InvalidInput("access names nobody: give identities, or 'open'", param="access")
    return AccessOverride(principals)


def ledger_store(settings: Settings, store: Storage) -> LedgerStore:
    """The PostgreSQL database ``ledger_url`` names, shared by server replicas, else the
    store's own database (SQLite's workspace file, or the PostgreSQL store)."""
    if settings.ledger_url:
        from .ledger_store_postgres import PostgresLedgerStore

        return PostgresLedgerStore(settings.ledger_url)
    return store.ledger_store()


def init_workspace(directory: Path, store: str = "") -> Path:
    """A workspace directory with its config file, its store created (and migrated).

    All or nothing: the settings are checked (no secret in a URL) and the store reached
    before the config file is written; when anything fails, what this call created (the
    directory, its database file, its config) is removed again."""
    settings = Settings.load(directory, store=store or None)  # refuses before any write
    config = directory / CONFIG_FILE
    created = _first_missing(directory)
    before = set(directory.iterdir()) if created is None else set()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        open_storage(settings.store, directory).close()  # reachable, migrated
        if not config.exists():
            config.write_text(config_template(), encoding="utf-8")
        if store:
            set_config_value(config, "store", store)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for path in set(directory.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise
    return directory


def _first_missing(directory: Path) -> Path | None:
    """The outermost of ``directory`` and its parents that does not exist yet (what
    ``mkdir(parents=True)`` would create), or None when ``directory`` exists."""
    missing = None
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing = path
    return missing
