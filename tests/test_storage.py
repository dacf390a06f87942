"""The storage conformance suite: every backend passes the same tests — SQLite (the
workspace file) and PostgreSQL with pgvector (a real server from ``pgserver``, PostgreSQL
16, a database of its own per test). Documents go in through the real ingest pipeline
(real parsers, the packaged embedder) and come out through the real retrieval."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from citewise import Workspace
from citewise.errors import InvalidInput
from citewise.filters import parse_where
from citewise.keys import authenticate, create_key, list_keys, revoke_key
from citewise.workspace import init_workspace
from conftest import CITEWISE, new_database, write_corpus

BACKENDS = ["sqlite", "postgresql"]
QUERY = "how do I rotate the API keys"


@pytest.fixture(params=BACKENDS)
def open_workspace(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Workspace]]:
    """Opens workspaces on one store (each call: another process's view of it)."""
    store = (
        new_database(request.getfixturevalue("postgres")) if request.param == "postgresql" else ""
    )
    directory = init_workspace(tmp_path / "ws", store=store)
    opened: list[Workspace] = []

    def open_(**settings: object) -> Workspace:
        opened.append(Workspace.open(directory, **settings))
        return opened[-1]

    open_.backend = request.param  # type: ignore[attr-defined]
    open_.directory = directory  # type: ignore[attr-defined]
    yield open_
    for ws in opened:
        ws.close()


def names(hits) -> list[str]:
    return [Path(h.source).name for h in hits]


def test_ingest_replace_and_delete_are_seen_by_every_search_mode(open_workspace, tmp_path) -> None:
    ws = open_workspace()
    corpus = write_corpus(tmp_path / "corpus")
    report = ws.ingest([corpus])
    assert report.added == 7 and not report.failed
    for mode in ("bm25", "dense", "hybrid"):
        assert names(ws.search(QUERY, 3, mode=mode))[0] == "guide.md", mode
    assert ws.ingest([corpus]).unchanged == 7  # nothing changed: nothing rewritten

    guide = corpus / "guide.md"
    guide.write_text("# Deployment guide\n\nKeys are rotated by the zebra herd every full moon.\n")
    assert ws.ingest([corpus]).updated == 1
    for mode in ("bm25", "dense", "hybrid"):
        top = ws.search("who rotates the keys at full moon", 1, mode=mode)[0]
        assert Path(top.source).name == "guide.md" and "zebra" in top.text, mode
    assert not ws.search("keyctl", 5, mode="bm25")  # the old text left the keyword index

    guide.unlink()
    ws.sync([corpus])
    other = open_workspace()  # a second view of the same store sees the same
    for view in (ws, other):
        assert "guide.md" not in names(view.search("zebra herd full moon", 10, mode="hybrid"))
        documents, chunks, _ = view.store.counts(view.collection().id)
        assert documents == 6 and chunks == len(view.store.chunk_ids(view.collection().id))
    assert ws.store.integrity_problems() == []


def test_filters_restrict_every_mode_and_never_return_fewer_than_k(
    open_workspace, tmp_path
) -> None:
    ws = open_workspace()
    ws.ingest([write_corpus(tmp_path / "corpus")])
    for mode in ("bm25", "dense", "hybrid"):
        only_rst = ws.search(
            "refunds to the original card", 5, mode=mode, where={"source": "*.rst"}
        )
        assert only_rst and set(names(only_rst)) == {"billing.rst"}, mode
        assert not ws.search(QUERY, 5, mode=mode, where={"source": "*.nothing"})
    # Dense search among allowed chunks returns all of them when k exceeds their number.
    collection = ws.collection()
    allowed = ws.store.filtered_chunk_ids(collection.id, parse_where({"source": "*.md"}))
    vector = ws.embedder().embed_query(QUERY)
    ids, scores = ws.indexes.search(collection, vector, 50, allowed)
    assert sorted(ids.tolist()) == sorted(allowed.tolist())
    assert list(scores) == sorted(scores, reverse=True)
    with pytest.raises(InvalidInput, match="invalid metadata filter key"):
        ws.search(QUERY, 3, where={"bad key;": 1})


def test_metadata_filters_compare_values_as_json(open_workspace, tmp_path) -> None:
    ws = open_workspace()
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "a.md").write_text("# Rotation\n\nRotate the keys monthly.\n")
    ws.ingest([folder])
    document_id = ws.store.sources(ws.collection().id)[str((folder / "a.md").resolve())]
    record = ws.store.document(ws.collection().id, document_id)
    assert record is not None and record.chunks >= 1
    language = record.metadata.get("language")
    if language is not None:  # parsers record the language of code; markdown has none
        assert ws.search("rotate", 3, where={"language": language})
    assert ws.search("rotate keys", 3, mode="bm25", where={"source": str(folder) + "/*"})
    assert not ws.search("rotate keys", 3, mode="bm25", where={"source": "/nowhere/*"})


def test_metadata_filters_match_equal_values_only(open_workspace) -> None:
    """A filter keeps the documents whose value at the key equals the one asked for (a
    number is not its string, a list holding the value is not the value), the same on
    SQLite's json_extract and PostgreSQL's indexed JSON containment."""
    from citewise.documents import Chunk, Document

    ws = open_workspace()
    collection = ws.collection()
    metadata = {
        "a": {"team": "billing", "shard": 3, "tags": ["x", "y"], "owner": {"name": "ann"}},
        "b": {"team": "billing", "shard": "3", "tags": "x", "owner": {"name": "bob"}},
        "c": {"team": "support", "shard": 4, "owner": "ann"},
    }
    for name, values in metadata.items():
        document = Document(f"doc:{name}", name, "rotating keys", [], f"h{name}", values)
        ws.store.replace_document(
            collection.id,
            document,
            [Chunk(0, 0, 13, "rotating keys", 2)],
            np.eye(1, 384, dtype=np.float32),
        )

    def matching(where: dict) -> set[str]:
        found = ws.store.filtered_chunk_ids(collection.id, parse_where(where)).tolist()
        return {s.removeprefix("doc:") for s in ws.store.chunk_sources(found).values()}

    assert matching({"team": "billing"}) == {"a", "b"}
    assert matching({"shard": 3}) == {"a"}
    assert matching({"shard": "3"}) == {"b"}
    assert matching({"tags": "x"}) == {"b"}  # a's list holds "x" but is not "x"
    assert matching({"owner.name": "ann"}) == {"a"}  # c's owner is "ann" itself, not nested
    assert matching({"team": "billing", "shard": 3}) == {"a"}
    assert matching({"team": "nobody"}) == set()
    hits = ws.search("rotating keys", 5, mode="bm25", where={"owner.name": "bob"})
    assert [h.source for h in hits] == ["doc:b"]
    for value in (["x", "y"], None):  # named, never a driver's error
        with pytest.raises(InvalidInput, match="the value must be a string, number or boolean"):
            ws.search("rotating keys", 5, where={"owner": value})
    with pytest.raises(
        InvalidInput, match=r"'name' is no operator; a nested field is named owner\.name"
    ):
        ws.search("rotating keys", 5, where={"owner": {"name": "ann"}})


def test_keys_runs_feedback_and_collection_settings(open_workspace) -> None:
    ws = open_workspace()
    key, _ = create_key(ws.store, "alice", ["docs"], ["ask"], rpm=60)
    with pytest.raises(Exception, match="exists"):
        create_key(ws.store, "alice", ["docs"], ["ask"])
    other = open_workspace()
    assert authenticate(other.store, key).name == "alice"
    revoke_key(other.store, "alice")
    assert authenticate(ws.store, key) is None  # revoked everywhere at once
    assert [k.name for k in list_keys(ws.store, include_revoked=True)] == ["alice"]
    assert list_keys(ws.store) == []

    collection = ws.collection()
    run = ws.store.start_run(collection.id)
    ws.store.record_failure(run, "bad.pdf", "corrupt PDF")
    ws.store.finish_run(run, "done", {"added": 1})
    (last,) = other.store.last_runs()
    assert last["failures"] == [("bad.pdf", "corrupt PDF")] and last["counts"] == {"added": 1}

    feedback_id = ws.store.add_feedback("alice", 1, "q?", "a.", [{"n": 1}], "m", None)
    assert other.store.feedback()[0]["id"] == feedback_id
    ws.store.set_collection_settings(collection.id, {"fusion": "rrf"}, {"folds": 5})
    assert other.store.collection_settings(collection.id) == ({"fusion": "rrf"}, {"folds": 5})
    ws.store.set_collection_settings(collection.id, None, {})
    assert other.store.collection_settings(collection.id) is None


def test_a_failed_write_leaves_the_previous_version_whole(open_workspace, tmp_path) -> None:
    ws = open_workspace()
    corpus = write_corpus(tmp_path / "corpus")
    ws.ingest([corpus])
    collection = ws.collection()
    before = (ws.store.counts(collection.id), ws.store.collection(collection.name).generation)
    guide_id = ws.store.sources(collection.id)[str((corpus / "guide.md").resolve())]
    chunk_ids = ws.store.document_chunk_ids(guide_id)
    document = ws.store.hits(chunk_ids)[chunk_ids[0]]
    from citewise.documents import Chunk, Document

    replacement = Document(document.source, "new", "new text " * 50, [], "hash")
    chunks = [Chunk(0, 0, 100, "new text", 2), Chunk(1, 100, 200, "new text", 2)]
    with pytest.raises(ValueError):  # two chunks, one vector: fails half way through
        ws.store.replace_document(
            collection.id, replacement, chunks, np.zeros((1, 384), np.float32)
        )
    after = (ws.store.counts(collection.id), ws.store.collection(collection.name).generation)
    assert after == before
    assert ws.store.document_chunk_ids(guide_id) == chunk_ids
    assert names(ws.search(QUERY, 1, mode="bm25")) == ["guide.md"]
    assert ws.store.integrity_problems() == []


def test_many_documents_in_one_transaction_and_a_failed_one_among_them(
    open_workspace,
) -> None:
    """Bulk writers (``migrate``, the benchmarks) put many documents in one transaction;
    one that fails inside it is rolled back alone, its counts with it."""
    from citewise.documents import Chunk, Document

    ws = open_workspace()
    collection = ws.collection()
    vector = np.eye(1, 384, dtype=np.float32)

    def document(n: int) -> Document:
        return Document(f"bulk:{n}", f"title {n}", f"rotating keys number {n}", [], f"h{n}")

    with ws.store.transaction():
        for n in range(12):
            ws.store.replace_document(
                collection.id, document(n), [Chunk(0, 0, 20, "rotating keys", 3)], vector
            )
        with pytest.raises(ValueError):  # two chunks, one vector: fails half way through
            ws.store.replace_document(
                collection.id,
                document(99),
                [Chunk(0, 0, 5, "a", 1), Chunk(1, 5, 9, "b", 1)],
                vector,
            )
        ws.store.replace_document(
            collection.id,
            document(0),  # replaced in the same transaction
            [Chunk(0, 0, 20, "rotating keys", 3)],
            vector,
        )
    assert ws.store.counts(collection.id)[:2] == (12, 12)
    assert "bulk:99" not in ws.store.sources(collection.id)
    assert ws.store.collection(collection.name).generation == 13  # one per successful write
    assert len(ws.search("rotating keys", 20, mode="bm25")) == 12
    assert ws.store.integrity_problems() == []


def test_concurrent_writers_from_many_threads(open_workspace, tmp_path) -> None:
    folders = []
    for n in range(4):
        folder = tmp_path / f"team{n}"
        folder.mkdir()
        for m in range(5):
            (folder / f"note{m}.md").write_text(
                f"# Team {n} note {m}\n\nProject falcon{n}x{m} ships soon.\n"
            )
        folders.append(folder)
    ws = open_workspace()
    ws.collection()  # created once, before the writers start
    errors: list[BaseException] = []

    def ingest(folder: Path) -> None:
        try:
            with Workspace.open(open_workspace.directory) as mine:
                assert mine.ingest([folder]).added == 5
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    documents, _, _ = ws.store.counts(ws.collection().id)
    assert documents == 20
    for n in range(4):
        assert names(ws.search(f"falcon{n}x3", 1, mode="bm25")) == ["note3.md"]
    assert ws.store.integrity_problems() == []


@pytest.mark.slow
def test_a_killed_ingest_leaves_whole_documents_and_a_rerun_finishes(
    open_workspace, tmp_path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(300):
        (folder / f"doc{n:03d}.md").write_text(
            f"# Doc {n}\n\n" + f"Paragraph about topic {n}. " * 40
        )
    ws = open_workspace()
    ws.collection()
    env = {**os.environ, "CITEWISE_WORKSPACE": str(open_workspace.directory)}
    child = subprocess.Popen(
        [CITEWISE, "ingest", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while ws.store.counts(ws.collection().id)[0] < 20 and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    collection = ws.collection()
    documents, chunks, _ = ws.store.counts(collection.id)
    assert 20 <= documents < 300
    # Every stored document has all its chunks, each with its vector and keyword entries.
    for document_id in ws.store.sources(collection.id).values():
        assert ws.store.document_chunk_ids(document_id)
    assert ws.store.integrity_problems() == []
    assert len(ws.store.chunk_ids(collection.id)) == chunks
    with Workspace.open(open_workspace.directory) as again:
        report = again.ingest([folder])
    assert report.added == 300 - documents and report.unchanged == documents
    assert names(ws.search("topic 299", 1, mode="bm25")) == ["doc299.md"]


def test_keyword_ranking_matches_across_backends(postgres, tmp_path) -> None:
    """The same corpus, the same queries: PostgreSQL's BM25 ranks as SQLite's FTS5 does."""
    corpus = write_corpus(tmp_path / "corpus")
    rankings = {}
    for backend in BACKENDS:
        store = new_database(postgres) if backend == "postgresql" else ""
        with Workspace.open(init_workspace(tmp_path / backend, store=store)) as ws:
            ws.ingest([corpus])
            rankings[backend] = [
                [(Path(h.source).name, h.heading_path) for h in ws.search(q, 5, mode="bm25")]
                for q in (
                    QUERY,
                    "refunds disputes finance team",
                    "fire drill assembly point",
                    "thermostat temperature",
                    "backups nightly",
                )
            ]
    assert rankings["postgresql"] == rankings["sqlite"]


def test_hnsw_above_the_threshold_and_exact_when_filtered(open_workspace, tmp_path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    for n in range(60):
        (folder / f"doc{n:02d}.md").write_text(f"# Doc {n}\n\nFacts about subject number {n}.\n")
    ws = open_workspace(ann_threshold=20)
    ws.ingest([folder])
    collection = ws.collection()
    assert ws.indexes.backend(collection) == "hnsw"
    vector = ws.embedder().embed_query("facts about subject number 7")
    ids, _ = ws.indexes.search(collection, vector, 10)
    assert len(ids) == 10
    exact = open_workspace(ann_threshold=10_000)
    exact_ids, _ = exact.indexes.search(
        exact.collection(), vector, 10, np.array(exact.store.chunk_ids(collection.id))
    )
    assert len(set(ids.tolist()) & set(exact_ids.tolist())) >= 8  # recall@10 of the HNSW index
    # A selective filter still yields every match (no post-filtering of an HNSW scan).
    allowed = ws.store.filtered_chunk_ids(collection.id, parse_where({"source": "*doc0?.md"}))
    found, _ = ws.indexes.search(collection, vector, 10, allowed)
    assert sorted(found.tolist()) == sorted(allowed.tolist()) and len(found) == 10


def test_migrate_copies_a_workspace_without_embedding_again(postgres, tmp_path) -> None:
    directory = tmp_path / "ws"
    with Workspace.open(directory) as ws:
        ws.ingest([write_corpus(tmp_path / "corpus")])
        key, _ = create_key(ws.store, "alice", ["*"], ["ask"])
        ws.store.add_feedback("alice", 1, "q?", "a.", [], None, None)
        answer = ws.ask("How do I rotate the API keys?", caller="alice")
        before = {
            mode: [(Path(h.source).name, round(h.score, 4)) for h in ws.search(QUERY, 5, mode=mode)]
            for mode in ("bm25", "dense", "hybrid")
        }
        stored = {d.document.source: d for d in ws.store.export_documents(ws.collection().id)}
    url = new_database(postgres)
    done = subprocess.run(
        [CITEWISE, "-w", str(directory), "migrate", "--to", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Copied 7 documents" in done.stdout and "1 API keys" in done.stdout
    assert f'store = "{url}"' in (directory / "citewise.toml").read_text()
    with Workspace.open(directory) as ws:
        assert ws.store.describe().startswith("PostgreSQL 16")
        after = {
            mode: [(Path(h.source).name, round(h.score, 4)) for h in ws.search(QUERY, 5, mode=mode)]
            for mode in ("bm25", "dense", "hybrid")
        }
        assert after == before
        for copied in ws.store.export_documents(ws.collection().id):  # the very same vectors
            original = stored[copied.document.source]
            assert copied.chunks == original.chunks
            np.testing.assert_array_equal(copied.vectors, original.vectors)
        assert authenticate(ws.store, key).name == "alice"
        assert len(ws.store.feedback()) == 1
        assert [r.key for r in ws.ledger.rows()] == ["alice"] * len(answer.attempts)
    again = subprocess.run(
        [CITEWISE, "-w", str(directory), "migrate", "--to", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Copied 0 documents" in again.stdout and "7 were there already" in again.stdout
