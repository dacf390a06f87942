"""Exact identifiers first: a hybrid query naming a code, a version or a quoted phrase
puts the passage that contains it verbatim first, on every storage and keyword path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from citewise import Workspace
from citewise.retrieval import (
    Mode,
    RetrievalSettings,
    exact_terms,
    query_identifiers,
    quoted_phrases,
)
from citewise.workspace import init_workspace
from conftest import new_database, write_corpus

# Twins worded alike; each query's words fit the wrong twin at least as well, so only
# the identifier or the phrase tells the right note.
NOTES = {
    "deployer-e2201.md": (
        "# Deployer error E2201\n\nThe deployer stops with E2201 when the signature of the "
        "release bundle does not verify. Fix: sign the bundle again with the release key, "
        "then rerun the deploy.\n"
    ),
    "deployer-e2210.md": (
        "# Deployer error E2210\n\nThe deployer stops with E2210 when the release bundle is "
        "larger than 2 GB. Fix: split the bundle in two, then rerun the deploy.\n"
    ),
    "agent-4.2.1.md": (
        "# Sync agent 4.2.1\n\nReleased in April. Fixes the sync agent hanging when a laptop "
        "wakes from sleep on battery.\n"
    ),
    "agent-4.2.7.md": (
        "# Sync agent 4.2.7\n\nReleased in June. Fixes the sync agent using all CPU after a "
        "laptop wakes from sleep.\n"
    ),
    "db-lock-timeout.md": (
        '# Order service errors\n\nThe order service logs "lock wait timeout exceeded" when a '
        "nightly export holds row locks on the orders table. Move the export to the replica.\n"
    ),
    "db-timeout-lock.md": (
        "# Order service slow during the export\n\nThe order service times out waiting for a "
        "lock during the nightly export: the lock wait exceeded the timeout twice last week. "
        "The export now runs at 04:00.\n"
    ),
}
EXACT_QUERIES = [
    ("deployer stops with E2201: is the release bundle larger than 2 GB?", "deployer-e2201.md"),
    ("sync agent 4.2.7 hangs after sleep on battery?", "agent-4.2.7.md"),
    (
        '"lock wait timeout exceeded" in the order service during the nightly export',
        "db-lock-timeout.md",
    ),
]
BEFORE = RetrievalSettings(exact_match=False)
BACKENDS = ["sqlite", "sqlite, bm25s index", "postgresql"]


def write_notes(root: Path) -> Path:
    """The twins beside the seven-format corpus of conftest, as a user's folder would be."""
    write_corpus(root)
    for name, text in NOTES.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def top_note(ws: Workspace, query: str, settings: RetrievalSettings | None = None) -> str:
    hits = ws.retriever().search(query, ws.collections(None), 5, "hybrid", settings=settings)
    return Path(hits[0].source).name


@pytest.fixture(scope="module")
def opened(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Workspace]]:
    """The notes ingested once per backend into a real workspace: FTS5, the bm25s keyword
    index (built above ``sparse_threshold``), or PostgreSQL's BM25. Tests only read."""
    notes = write_notes(tmp_path_factory.mktemp("identifiers") / "notes")
    workspaces: dict[str, Workspace] = {}

    def open_(backend: str) -> Workspace:
        if backend not in workspaces:
            postgres = "postgres" in backend
            store = new_database(request.getfixturevalue("postgres")) if postgres else ""
            settings = {"sparse_threshold": 1} if "bm25s" in backend else {}
            directory = init_workspace(tmp_path_factory.mktemp("ws"), store=store)
            ws = workspaces[backend] = Workspace.open(directory, **settings)
            report = ws.ingest([notes])
            assert report.added == len(NOTES) + 7 and not report.failed, report
            if "bm25s" in backend:
                assert ws.sparse.current(ws.collections(None)[0]) is not None
        return workspaces[backend]

    yield open_
    for ws in workspaces.values():
        ws.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_hybrid_puts_the_exact_identifier_or_phrase_first(
    opened: Callable[[str], Workspace], backend: str
) -> None:
    ws = opened(backend)
    for query, expected in EXACT_QUERIES:
        assert top_note(ws, query) == expected, query
        hits = ws.search(query, 3)  # the workspace's own search, the default path
        assert Path(hits[0].source).name == expected, query
        assert hits[0].score >= hits[1].score >= hits[2].score  # scores keep the order


def test_the_fusion_alone_ranked_the_twin_first(opened: Callable[[str], Workspace]) -> None:
    """What the exact-match pass fixes: before it, each of these queries ranked the
    look-alike note first (so the test above can fail)."""
    ws = opened("sqlite")
    for query, expected in EXACT_QUERIES:
        before = top_note(ws, query, BEFORE)
        assert before != expected and before in NOTES, (query, before)
        assert top_note(ws, query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "How do I rotate the API keys?",
        "Where do visitors park?",
        "Backups run nightly at 02:00 and are kept for 30 days since 2019",
        "the 2nd floor auditorium, 65 euros, 240 CHF",
    ],
)
def test_an_ordinary_query_ranks_as_before(opened: Callable[[str], Workspace], query: str) -> None:
    ws = opened("sqlite")
    assert exact_terms(query) == []
    after = ws.retriever().search(query, ws.collections(None), 10, "hybrid")
    before = ws.retriever().search(query, ws.collections(None), 10, "hybrid", settings=BEFORE)
    assert [(h.chunk_id, h.score) for h in after] == [(h.chunk_id, h.score) for h in before]


def test_single_modes_stay_single(opened: Callable[[str], Workspace]) -> None:
    """bm25 and dense are the rankings they are named for: no exact-match pass."""
    ws = opened("sqlite")
    query, _ = EXACT_QUERIES[0]
    modes: list[Mode] = ["bm25", "dense"]
    for mode in modes:
        after = ws.retriever().search(query, ws.collections(None), 10, mode)
        before = ws.retriever().search(query, ws.collections(None), 10, mode, settings=BEFORE)
        assert [h.chunk_id for h in after] == [h.chunk_id for h in before]


@pytest.mark.parametrize(
    ("query", "identifiers"),
    [
        ("error E1042 on the replica", ["E1042"]),
        ("upgrade to v2.3.1 and 3.11.4.", ["v2.3.1", "3.11.4"]),
        ("JIRA-4821, 0x80070005 and order 884213", ["JIRA-4821", "0x80070005", "884213"]),
        ("flag ff_checkout_v3 on db-17", ["ff_checkout_v3", "db-17"]),
        ("In 2019 three of 120 patients (10%) took 40mg for 7-day courses", []),
        ("a 2D model of 1960s data at 03:10 on 2024-03-04, version 2.5", []),
    ],
)
def test_what_counts_as_an_identifier(query: str, identifiers: list[str]) -> None:
    assert query_identifiers(query) == identifiers


def test_quoted_phrases_match_verbatim_ignoring_case_and_spacing() -> None:
    assert quoted_phrases('why "Connection reset  by peer" and \u201cdisk full\u201d?') == [
        "Connection reset by peer",
        "disk full",
    ]
    version, code, phrase = exact_terms('"connection reset by peer" v2.3.1 E1042')
    assert phrase.found_in("ERROR: Connection reset\nby peer")
    assert not phrase.found_in("the peer reset the connection")
    assert not phrase.found_in("connection reset by peers")
    assert version.found_in("fixed in 2.3.1.") and version.found_in("V2.3.1")
    assert not version.found_in("v2.3.10") and not version.found_in("2.3.1.4")
    assert code.found_in("(e1042)") and not code.found_in("E10421")
