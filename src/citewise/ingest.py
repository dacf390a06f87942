"""Source items → documents → chunks → embeddings → the store.

Unchanged items (same mtime and size, or same content hash) are skipped before
parsing. Items are parsed and chunked one by one and each document is written in its own
transaction as soon as it is embedded: an interrupted run keeps every document it
finished, and a rerun does only the rest. An embedder that gains from big batches (a
float ONNX model, a remote API) gets chunks of several documents at once, but never
holds finished work longer than ``FLUSH_SECONDS``; the default int8 embedder runs one
text at a time anyway, so there every document commits the moment it is embedded.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chunking import chunk_document
from .documents import Chunk, Document
from .embedders import Embedder, embed_texts
from .errors import ParseError, Unavailable
from .names import printable
from .sources import Skipped, SourceItem, hash_file
from .storage import Collection, Storage

log = logging.getLogger(__name__)
EMBED_BATCH_CHUNKS = 256
FLUSH_SECONDS = 0.5


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: list[Skipped] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Parts of documents that were stored all the same (a WebVTT cue with a garbled timing,
    # a mail's corrupt attachment): each document counts once, as added or updated, and
    # ``warned`` of them had such problems.
    warnings: list[Skipped] = field(default_factory=list)
    warned: int = 0
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0  # recordings transcribed
    # What else the run did, a sentence each ("kept 3 documents outside this export's dates…").
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "failed": len(self.failed),
            "skipped": len(self.skipped),
            "warnings": len(self.warnings),
            "chunks": self.chunks,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class Progress:
    """One item finished (``done`` of ``total``), for progress bars.

    An added or updated item is stored with its batch: ``committed`` names the sources
    whose documents the store holds since the event before (searchable now). The last
    item's event names the last batch — except for a stream of unknown length, whose
    last batch is reported by one more event, ``outcome`` "committed", naming no item.

    A document of more than ``EMBED_BATCH_CHUNKS`` chunks is embedded a slice at a time,
    with an event after each (``outcome`` "embedding", ``chunks`` 0): ``chunks_done`` of
    its ``chunks_total`` embedded, ``tokens`` counting them, ``eta_seconds`` the time its
    rest should take at the pace so far. ``done`` counts the items finished before it."""

    done: int
    total: int | None  # None while a connector streams items of unknown number
    source: str
    chunks: int
    tokens: int
    outcome: str  # added | updated | unchanged | failed | skipped (| committed | embedding)
    audio_seconds: float = 0.0  # the item's length when it was a recording, transcribed
    committed: tuple[str, ...] = ()
    chunks_done: int = 0  # "embedding": the document's chunks embedded so far
    chunks_total: int = 0  # "embedding": all its chunks
    eta_seconds: float | None = None  # "embedding": its chunks left at the pace so far


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Pending:
    item: SourceItem
    document: Document
    chunks: list[Chunk]
    existing: bool


def embedding_text(title: str, heading_path: tuple[str, ...], text: str) -> str:
    """What the embedder sees: the title and heading path give a chunk its context."""
    context = list(dict.fromkeys([title, *heading_path]))
    return "\n".join([*context, text])


@dataclass(frozen=True)
class AccessOverride:
    """An ingest's access list for every document it writes (``--access``), replacing
    what the source says: ``principals`` restricts them to those identities (None: open
    to everyone who reads the collection). A document already stored with another access
    list is written again, even when its text is unchanged."""

    principals: tuple[str, ...] | None


class Ingestor:
    def __init__(
        self,
        store: Storage,
        collection: Collection,
        embedder: Embedder,
        chunk_tokens: int,
        chunk_overlap: int,
        max_document_mb: int = 64,
        access: AccessOverride | None = None,
    ) -> None:
        self.store = store
        self.access = access
        self.collection = collection
        self.embedder = embedder
        self.chunk_tokens = min(chunk_tokens, embedder.max_tokens)
        self.chunk_overlap = chunk_overlap
        # The text one document may extract to: a small file (a PDF, a zip member) can hold
        # far more text than its size suggests, and every chunk of it is embedded.
        self.max_document_chars = max_document_mb * 1024 * 1024

    def run(
        self,
        items: Iterable[SourceItem | Skipped],
        progress: ProgressCallback | None = None,
        delete_missing_under: list[str] | Callable[[], list[str]] | None = None,
    ) -> IngestReport:
        """Ingest ``items`` — a list, or a generator a connector streams (never held whole).

        ``delete_missing_under``: source prefixes whose documents not seen in this run are
        deleted, or a function giving them once the items are exhausted (a connector knows
        only then which parts of its source it read completely).
        """
        report = IngestReport()
        started = time.perf_counter()
        total = len(items) if isinstance(items, Sized) else None
        run_id = self.store.start_run(self.collection.id, run_worker())
        seen: set[str] = set()
        failed: list[str] = []  # parts that could not be read: what is stored under them stays
        pending: list[_Pending] = []
        pending_since = time.monotonic()
        status = "interrupted"
        done = 0
        try:
            for done, item in enumerate(items, start=1):
                if not (isinstance(item, Skipped) and item.gone):
                    seen.add(item.source)
                if isinstance(item, Skipped) and item.failed:
                    failed.append(item.source)
                if not pending:
                    pending_since = time.monotonic()
                outcome, n_chunks = self._prepare(item, run_id, report, pending)
                audio = (
                    _audio_seconds(pending[-1].document) if outcome in ("added", "updated") else 0.0
                )
                report.audio_seconds += audio
                # The last of a known number is stored before its event: that event
                # then names every committed source (a stream's last batch gets its own).
                last = total is not None and done == total
                due = last or self._due(pending, pending_since)
                committed = self._flush(pending, report, progress, done - 1, total) if due else []
                if progress:
                    progress(
                        Progress(
                            done,
                            total,
                            item.source,
                            n_chunks,
                            report.tokens,
                            outcome,
                            audio,
                            tuple(committed),
                        )
                    )
            committed = self._flush(pending, report, progress, done, total)
            if progress and committed:
                progress(
                    Progress(
                        done, total, "", 0, report.tokens, "committed", committed=tuple(committed)
                    )
                )
            if delete_missing_under is not None:
                roots = (
                    delete_missing_under()
                    if callable(delete_missing_under)
                    else delete_missing_under
                )
                report.deleted = self._delete_missing(seen, roots, failed, report.notes)
            status = "complete"
        finally:
            report.seconds = time.perf_counter() - started
            self.store.finish_run(run_id, status, report.counts())
        return report

    def _due(self, pending: list[_Pending], since: float) -> bool:
        """Whether to embed and commit what is pending now."""
        if not pending:
            return False
        if self.embedder.batch_size <= 1:
            return True  # nothing to gain from waiting: commit each document at once
        chunks = sum(len(p.chunks) for p in pending)
        return chunks >= EMBED_BATCH_CHUNKS or time.monotonic() - since >= FLUSH_SECONDS

    def _prepare(
        self, item: SourceItem | Skipped, run_id: int, report: IngestReport, pending: list[_Pending]
    ) -> tuple[str, int]:
        if isinstance(item, Skipped):
            if item.failed:  # a connector could not read this part of its source
                report.failed.append(item)
                self.store.record_failure(run_id, item.source, item.reason)
                return "failed", 0
            report.skipped.append(item)
            return "skipped", 0
        existing = self.store.document_state(self.collection.id, item.source)
        # The same text with another access list is written again.
        existing_unchanged = existing is not None and self._access_as_asked(existing.id)
        if (
            existing
            and existing_unchanged
            and item.mtime_ns is not None
            and (existing.mtime_ns, existing.size) == (item.mtime_ns, item.size)
        ):
            report.unchanged += 1
            return "unchanged", 0
        try:
            if (
                existing
                and existing_unchanged
                and existing.content_hash == self._content_hash(item)
            ):
                self.store.touch_document(existing.id, item.mtime_ns, item.size)
                report.unchanged += 1
                return "unchanged", 0
            document = item.load()
            if self.access is not None:
                document.access = self.access.principals
            elif document.access is None and existing is not None:
                # A source that says nothing of access (a file) keeps the access list the
                # document was given (`--access`): a changed file is not opened by its edit.
                stored = self.store.document_access(existing.id)
                if stored.restricted:
                    document.access = stored.principals
            if len(document.text) > self.max_document_chars:
                raise ParseError(
                    f"extracts to {len(document.text) / 1048576:,.0f} MB of text, over the "
                    f"max_document_mb limit ({self.max_document_chars // 1048576} MB)"
                )
            chunks = chunk_document(
                document, self.embedder.token_offsets, self.chunk_tokens, self.chunk_overlap
            )
            # The document is stored: what of it could not be read is a warning on it, not
            # an outcome of its own (one file, one outcome).
            for location, reason in document.problems:
                report.warnings.append(Skipped(location, reason, failed=True))
                self.store.record_failure(run_id, location, reason)
            report.warned += bool(document.problems)
        except Unavailable:
            raise  # the store went away: no file is at fault, and the run stops here
        except Exception as exc:  # one bad file must not stop the rest; Ctrl-C still does
            reason = str(exc) if isinstance(exc, ParseError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "skipped %s: %s",
                printable(item.source),
                printable(reason),
                exc_info=not isinstance(exc, ParseError),
            )
            report.failed.append(Skipped(item.source, reason))
            self.store.record_failure(run_id, item.source, reason)
            return "failed", 0
        pending.append(_Pending(item, document, chunks, existing is not None))
        return ("updated" if existing else "added"), len(chunks)

    def _access_as_asked(self, document_id: int) -> bool:
        """Whether a stored document already has the access list this run gives it."""
        if self.access is None:
            return True
        stored = self.store.document_access(document_id)
        if self.access.principals is None:
            return not stored.restricted
        return stored.restricted and set(stored.principals) == set(self.access.principals)

    def _content_hash(self, item: SourceItem) -> str:
        if not item.content_hash and item.mtime_ns is not None:
            item.content_hash = hash_file(Path(item.source))
        return item.content_hash

    def _flush(
        self,
        pending: list[_Pending],
        report: IngestReport,
        progress: ProgressCallback | None = None,
        done: int = 0,
        total: int | None = None,
    ) -> list[str]:
        """Embed and store what is pending; the sources stored."""
        if not pending:
            return []
        vectors = self._embed(pending, report, progress, done, total)
        offset = 0
        for p in pending:
            rows = vectors[offset : offset + len(p.chunks)]
            offset += len(p.chunks)
            self.store.replace_document(
                self.collection.id, p.document, p.chunks, rows, p.item.mtime_ns, p.item.size
            )
            report.updated += p.existing
            report.added += not p.existing
            report.chunks += len(p.chunks)
            report.tokens += sum(c.n_tokens for c in p.chunks)
        stored = [p.item.source for p in pending]
        pending.clear()
        return stored

    def _embed(
        self,
        pending: list[_Pending],
        report: IngestReport,
        progress: ProgressCallback | None,
        done: int,
        total: int | None,
    ) -> np.ndarray:
        """The vectors of every pending chunk, in order, embedded ``EMBED_BATCH_CHUNKS`` at
        a time: a document longer than that reports each slice ("embedding" events)."""
        texts = [
            embedding_text(p.document.title, c.heading_path, c.text)
            for p in pending
            for c in p.chunks
        ]
        vectors = np.zeros((len(texts), self.embedder.dim), np.float32)
        tokens = np.cumsum([c.n_tokens for p in pending for c in p.chunks])
        spans: list[tuple[str, int, int]] = []  # (source, first chunk, end) of long documents
        start = 0
        for p in pending:
            if len(p.chunks) > EMBED_BATCH_CHUNKS:
                spans.append((p.item.source, start, start + len(p.chunks)))
            start += len(p.chunks)
        began = time.monotonic()
        for low in range(0, len(texts), EMBED_BATCH_CHUNKS):
            high = min(low + EMBED_BATCH_CHUNKS, len(texts))
            vectors[low:high] = embed_texts(self.embedder, texts[low:high])
            if progress is None:
                continue
            pace = high / max(time.monotonic() - began, 1e-9)  # chunks a second
            for source, first, end in spans:
                if first < high and low < end:
                    embedded = min(high, end) - first
                    progress(
                        Progress(
                            done,
                            total,
                            source,
                            0,
                            report.tokens + int(tokens[high - 1]),
                            "embedding",
                            chunks_done=embedded,
                            chunks_total=end - first,
                            eta_seconds=(end - first - embedded) / pace,
                        )
                    )
        return vectors

    def _delete_missing(
        self, seen: set[str], roots: list[str], failed: list[str], notes: list[str]
    ) -> int:
        """Delete what was not seen under ``roots`` — never what lies under a part that
        failed (a folder that could not be listed is not a folder that was emptied), nor
        what a root read in part only does not cover (a Slack export of some dates; see
        ``connectors.base.PartialScope``): those are counted in ``notes``."""
        stored = self.store.sources(self.collection.id)
        gone: list[int] = []
        kept: dict[str, int] = {}
        for source, doc_id in stored.items():
            under = [root for root in roots if _is_under(source, root)]
            if source in seen or not under or any(_is_under(source, p) for p in failed):
                continue
            outside = [r for r in under if not getattr(r, "covers", lambda _: True)(source)]
            if len(outside) < len(under):
                gone.append(doc_id)
            else:
                why = str(getattr(outside[0], "kept", ""))
                kept[why] = kept.get(why, 0) + 1
        notes += [f"kept {n} document{'s' * (n != 1)} {why}" for why, n in kept.items()]
        self.store.delete_documents(self.collection.id, gone)
        return len(gone)


def run_worker() -> str:
    """Who runs an ingest (host:pid), recorded with its run so that the next start can
    tell a run whose process was killed (``kill -9``, a power cut) from one still going."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(worker: str) -> bool:
    """Whether the process ``run_worker`` named is known to be dead: on this host, and no
    such process. A run of another host (a shared PostgreSQL store) is left as it is."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def _audio_seconds(document: Document) -> float:
    return (
        float(document.metadata.get("audio_seconds", 0.0))
        if document.metadata.get("media")
        else 0.0
    )


def _is_under(source: str, root: str) -> bool:
    return source == root or source.startswith(root.rstrip("/") + "/")
