"""The derived bm25s keyword index: built above sparse_threshold, never stale, filters apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from citewise import Workspace

QUERIES = {
    "rotate the API keys keyctl": "guide.md",
    "refunds original card business days": "billing.rst",
    "emergency assembly point parking lot": "safety.pdf",
    "daily meal allowance abroad": "travel.docx",
}


def test_bm25s_index_ranks_like_fts5_and_tracks_writes(
    ingested_template: Path, tmp_path: Path
) -> None:
    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as fts:
        expected = {q: fts.search(q, 3, mode="bm25")[0].source for q in QUERIES}
        assert fts.status().collections[0].keyword_index == "fts5"
    with Workspace.open(tmp_path / "ws", sparse_threshold=1) as ws:
        collection = ws.collection("default")
        assert ws.sparse.current(collection) is None  # not built yet: FTS5 answers
        ws.refresh_indexes("default")
        assert ws.sparse.current(collection) is not None
        assert ws.status().collections[0].keyword_index == "bm25s"
        for query, source in QUERIES.items():
            hits = ws.search(query, 3, mode="bm25")
            assert hits[0].source.endswith(source), query
            assert hits[0].source == expected[query]
        # A write makes the index stale: searches fall back to FTS5 until the ingest
        # that made the write refreshes it, so a new document is found at once.
        extra = tmp_path / "extra"
        extra.mkdir()
        (extra / "bees.md").write_text(
            "# Bees\n\nThe rooftop beehives produce forty kilos of honey.\n"
        )
        ws.ingest([extra])
        assert ws.sparse.current(ws.collection("default")) is not None
        assert ws.search("rooftop beehives honey", 1, mode="bm25")[0].title == "Bees"
        filtered = ws.search("honey keys refunds", 5, mode="bm25", where={"source": "*guide.md"})
        assert filtered and all(h.source.endswith("guide.md") for h in filtered)
        assert ws.search("rooftop beehives honey", 5, mode="hybrid")[0].title == "Bees"


def test_index_on_disk_is_reused_and_removed_below_the_threshold(
    ingested_template: Path, tmp_path: Path
) -> None:
    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    with Workspace.open(tmp_path / "ws", sparse_threshold=1) as ws:
        ws.refresh_indexes("default")
    index_dir = next((tmp_path / "ws" / "index").glob("*.bm25s"))
    with Workspace.open(tmp_path / "ws", sparse_threshold=1) as ws:
        assert ws.sparse.current(ws.collection("default")) is not None  # loaded, not rebuilt
    with Workspace.open(tmp_path / "ws") as ws:  # the default threshold: too small to index
        ws.refresh_indexes("default")
        assert not index_dir.exists()


@pytest.mark.parametrize("share", [0.002, 0.05, 0.3])
def test_a_selective_filter_scores_its_rows_as_the_whole_index_would(
    share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring only the allowed rows (a user's 0.5% of a collection) ranks exactly as
    scoring every row and masking the rest: same chunks, same scores."""
    from citewise.index import sparse

    rng = np.random.default_rng(7)
    words = [f"term{n}" for n in range(300)]
    weights = 1 / np.arange(1, len(words) + 1)
    texts = [" ".join(rng.choice(words, size=30, p=weights / weights.sum())) for _ in range(5000)]
    index = sparse.SparseIndex.build((10 + 3 * n, text) for n, text in enumerate(texts))
    queries = [" ".join(rng.choice(words[:150], size=3)) for _ in range(25)] + ["term1 term1 term7"]
    found = 0
    for query in queries:
        allowed = rng.choice(index.ids, size=max(1, int(share * len(index.ids))), replace=False)
        allowed = np.concatenate([allowed, [1, 2, 99_999]])  # ids the index does not hold
        monkeypatch.setattr(sparse, "SUBSET_SHARE", 1.0)
        subset = index.search(query, 10, allowed)
        monkeypatch.setattr(sparse, "SUBSET_SHARE", 0.0)
        masked = index.search(query, 10, allowed)
        assert {c for c, _ in subset} <= set(allowed.tolist())
        found += len(subset)
        assert np.allclose([s for _, s in subset], [s for _, s in masked], rtol=1e-5)
        # Ties at the tenth place may keep either chunk; above it the chunks are the same.
        above = subset[-1][1] + 1e-4 if subset else 0.0
        assert {c for c, s in subset if s > above} == {c for c, s in masked if s > above}
    assert found > 0
