from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citewise import EmbedderMismatch, Workspace
from citewise.errors import WorkspaceError
from citewise.filters import Compare
from citewise.keywords import fts_query
from citewise.retrieval import confidence, dense_share, fuse


@pytest.mark.parametrize(
    ("question", "expected_file"),
    [
        ("How do I rotate the API keys?", "guide.md"),
        ("When are refunds issued?", "billing.rst"),
        ("Where do visitors park?", "handbook.html"),
        ("Where is the emergency assembly point?", "safety.pdf"),
        ("What is the daily meal allowance abroad?", "travel.docx"),
        ("convert celsius to fahrenheit", "thermostat.py"),
        ("What does the cafeteria serve on Thursdays?", "notes.txt"),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_each_mode_finds_the_right_document(
    ingested, question: str, expected_file: str, mode: str
) -> None:
    ws, _ = ingested
    hits = ws.search(question, 3, mode=mode)
    assert Path(hits[0].source).name == expected_file, [
        (Path(h.source).name, h.score) for h in hits
    ]


def test_hits_carry_citable_locations(ingested) -> None:
    ws, _ = ingested
    hit = ws.search("emergency assembly point north parking lot", 1)[0]
    assert hit.page == 2 and "page 2" in hit.location
    assert hit.text in ws.store.document_text(hit.document_id)
    assert ws.store.document_text(hit.document_id)[hit.start : hit.end] == hit.text
    md = ws.search("rotate API keys keyctl", 1)[0]
    assert md.heading_path == ("Deployment guide", "Rotating API keys")
    assert hit.cosine is not None and 0 < hit.cosine <= 1


def test_collections_are_searched_separately(workspace: Workspace, corpus: Path) -> None:
    workspace.ingest([corpus / "guide.md"], collection="ops")
    workspace.ingest([corpus / "notes.txt"], collection="office")
    assert {h.collection for h in workspace.search("keys lasagna", 10, collections=["ops"])} == {
        "ops"
    }
    assert {h.collection for h in workspace.search("keys lasagna", 10, collections=["office"])} == {
        "office"
    }
    assert {h.collection for h in workspace.search("keys lasagna", 10)} == {"ops", "office"}


def test_metadata_filter(ingested) -> None:
    ws, _ = ingested
    hits = ws.search("temperature", 10, where={"language": "python"})
    assert hits and all(h.source.endswith(".py") for h in hits)
    assert ws.search("parking", 10, where={"source": "*.html"})[0].source.endswith("handbook.html")


def test_other_embedder_is_refused_with_the_fix(ingested) -> None:
    ws, _ = ingested
    ws.store.db.execute(
        "UPDATE collections SET embedder = 'sentence-transformers:other', dim = 768"
    )
    with pytest.raises(EmbedderMismatch, match="citewise reindex --collection default"):
        ws.search("parking", 3)
    with pytest.raises(EmbedderMismatch):
        ws.ingest([Path(ws.path)])
    assert ws.reindex("default") > 0
    assert Path(ws.search("Where do visitors park?", 1)[0].source).name == "handbook.html"
    assert ws.store.integrity_problems() == []


def test_hnsw_above_threshold_agrees_with_exact(ingested, tmp_path: Path) -> None:
    ws, _ = ingested
    with Workspace.open(ws.path, ann_threshold=5) as small:
        collection = small.collection()
        assert small.indexes.backend(collection) == "hnsw"
        assert list((ws.path / "index").glob("*.usearch"))
        query = small.embedder().embed_query("Where do visitors park?")
        approx_ids, _ = small.indexes.search(collection, query, 5)
        exact_ids, _ = small.indexes._get(collection).exact.search(query, 5)
        assert approx_ids[0] == exact_ids[0]
        assert len(set(approx_ids) & set(exact_ids)) >= 4


@pytest.mark.parametrize("ann_threshold", [1_000_000, 3])  # exact, then HNSW (usearch)
def test_writes_update_the_vector_index_without_a_rebuild(
    tmp_path: Path, ann_threshold: int
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    animals = [
        "Aardvarks eat ants.",
        "Bumblebees pollinate clover.",
        "Camels store fat.",
        "Dolphins sleep with half their brain.",
        "Eels cross oceans to spawn.",
    ]
    for n, text in enumerate(animals):
        (folder / f"{n}.md").write_text(f"# Note {n}\n\n{text}\n")
    with Workspace.open(tmp_path / "ws", ann_threshold=ann_threshold) as ws:
        ws.ingest([folder])
        assert names_dense(ws, "which animal stores fat") == "2.md"
        indexes = ws.indexes
        assert (indexes.builds, indexes.updates) == (1, 0)
        (folder / "2.md").write_text("# Note 2\n\nFlamingos are pink from shrimp.\n")  # replaced
        (folder / "4.md").unlink()  # deleted
        (folder / "5.md").write_text("# Note 5\n\nGeckos climb glass.\n")  # added
        ws.sync([folder])
        assert names_dense(ws, "pink birds eating shrimp") == "2.md"
        assert names_dense(ws, "lizards climbing windows") == "5.md"
        collection = ws.collection()
        hits = ws.search("eels crossing the ocean to spawn", 10, mode="dense")
        assert "4.md" not in [Path(h.source).name for h in hits]
        assert indexes.builds == 1 and indexes.updates >= 1  # changes applied, not reloaded
        # The updated index holds exactly what the store holds.
        assert sorted(indexes._get(collection).exact.ids) == sorted(
            ws.store.chunk_ids(collection.id)
        )
        if ann_threshold == 3:
            assert indexes.backend(collection) == "hnsw"
    # A new process loads the saved graph and applies only later changes.
    (folder / "6.md").write_text("# Note 6\n\nHedgehogs hibernate in leaves.\n")
    with Workspace.open(tmp_path / "ws", ann_threshold=ann_threshold) as again:
        again.ingest([folder])
        assert names_dense(again, "hibernating hedgehogs") == "6.md"
        assert names_dense(again, "which animal stores fat") != "2.md"


def names_dense(ws: Workspace, query: str) -> str:
    return Path(ws.search(query, 1, mode="dense")[0].source).name


def test_index_is_rebuilt_after_writes(workspace: Workspace, tmp_path: Path) -> None:
    first = tmp_path / "a.md"
    first.write_text("# A\n\nAardvarks eat ants.\n")
    workspace.ingest([first])
    assert Path(workspace.search("aardvark", 1, mode="dense")[0].source).name == "a.md"
    second = tmp_path / "b.md"
    second.write_text("# B\n\nBumblebees pollinate clover.\n")
    workspace.ingest([second])
    assert Path(workspace.search("bumblebee pollination", 1, mode="dense")[0].source).name == "b.md"


def test_fts_query_drops_stopwords_and_quotes_words() -> None:
    assert (
        fts_query('keys NEAR rotation "quoted" -minus*')
        == '"keys" OR "near" OR "rotation" OR "quoted" OR "minus"'
    )
    assert fts_query("the of") == '"the" OR "of"'
    assert fts_query("?!") is None


def test_a_repeated_query_word_counts_once_per_occurrence(ingested) -> None:
    """BM25 sums over query terms with their repeats (Lucene, bm25s): repeating a word
    raises the passages that contain it."""
    ws, _ = ingested
    assert fts_query("Keys rotation keys") == '"keys" OR "rotation" OR "keys"'
    collection = ws.collection()
    once = dict(ws.store.bm25(fts_query("keys rotation"), [collection.id], 50))
    twice = dict(ws.store.bm25(fts_query("keys keys rotation"), [collection.id], 50))
    only_keys = dict(ws.store.bm25(fts_query("keys"), [collection.id], 50))
    assert once and set(once) == set(twice)
    for chunk_id, score in twice.items():
        assert score == pytest.approx(once[chunk_id] + only_keys.get(chunk_id, 0.0))


def test_query_syntax_characters_are_harmless(ingested) -> None:
    ws, _ = ingested
    # FTS5 operators and punctuation around a real word: the word is still found.
    for query in ['"garage', "NEAR(garage", "garage AND OR NOT", "col:garage ^garage", "garage*"]:
        hits = ws.search(query, 3, mode="bm25")
        assert hits and Path(hits[0].source).name == "handbook.html", query
    assert ws.search("* ( ) ^", 3, mode="bm25") == []


def test_fusion_methods() -> None:
    bm25 = [(1, 9.0), (2, 5.0), (3, 1.0)]
    dense = [(3, 0.9), (4, 0.8), (1, 0.1)]
    rrf = fuse(bm25, dense, "rrf", 0.5)
    assert rrf[0].chunk_id in (1, 3) and {r.chunk_id for r in rrf} == {1, 2, 3, 4}
    assert rrf[0].score == pytest.approx(1 / 61 + 1 / 63)
    convex = fuse(bm25, dense, "convex", 0.5)
    scores = {r.chunk_id: r.score for r in convex}
    assert scores[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert scores[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert scores[4] == pytest.approx(0.5 * (0.8 - 0.1) / 0.8)
    only_dense = fuse([], dense, "convex", 0.5)
    assert [r.chunk_id for r in only_dense] == [3, 4, 1]
    assert np.isclose(only_dense[0].score, 1.0)


def test_adaptive_fusion_leans_on_the_ranking_that_separates_its_top() -> None:
    # Keyword scores that barely fall (common words everywhere) against vectors that set
    # three passages apart: the vectors get more than their fixed share, and the reverse.
    flat = [(i, 10.0 - 0.01 * i if i <= 15 else 5.0 - 0.1 * i) for i in range(1, 31)]
    peaked = [(100 + i, 0.9 if i <= 3 else 0.3 - 0.001 * i) for i in range(1, 31)]
    assert confidence(flat) < 0.05 and confidence(peaked) > 0.9
    assert dense_share(flat, peaked, 0.5) > 0.9
    assert dense_share(peaked, flat, 0.5) < 0.1
    # The collection's dense_weight stays the prior: equally sure rankings keep it.
    assert dense_share(peaked, peaked, 0.3) == pytest.approx(0.3)
    fused = fuse(flat, peaked, "adaptive", 0.5)
    assert [r.chunk_id for r in fused[:3]] == [101, 102, 103]
    convex = fuse(flat, peaked, "convex", 0.5)
    assert convex[0].chunk_id == 1  # fixed weights: the flat list's first passage wins
    # Lists too short to judge are neutral; a single list is used as it is.
    assert confidence(flat[:5]) == 0.5
    assert [r.chunk_id for r in fuse([], peaked, "adaptive", 0.5)][:3] == [101, 102, 103]
    with pytest.raises(WorkspaceError, match="adaptive, convex, rrf"):
        fuse(flat, peaked, "sum", 0.5)


def test_unfiltered_bm25_shortcut_returns_what_the_filtered_query_does(ingested) -> None:
    ws, _ = ingested
    collection = ws.collection()
    for query in ("visitors park garage", "keys rotation gateway", "fruit"):
        match = fts_query(query)
        assert match is not None
        shortcut = ws.store.bm25(match, [collection.id], 50)
        joined = ws.store.bm25(match, [collection.id], 50, where=Compare("source", "=", "*"))
        assert shortcut == joined
