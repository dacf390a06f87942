"""Learn a collection's retrieval settings from labelled queries (``citewise tune``).

Labels come from a BEIR split, a JSONL of ``{"query", "relevant": [...]}`` lines (what
``citewise eval retrieval`` reads), or the 👍/👎 feedback the server stores. Each labelled
query is searched once per keyword-column weighting and once with vectors; every
combination of settings then re-ranks those kept lists (no search is repeated) and is
scored by nDCG@10 per query, documents judged as in ``eval retrieval``.

K-fold cross-validation keeps the report honest: for each fold, the settings that score
best on the *other* folds are measured on it, beside the current settings on the same
queries. The settings chosen on all the labels are saved to the collection only when
that held-out comparison says they help (``dry_run`` never saves).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CitewiseError
from .evaluation import document_run, evaluate_run, judged_queries
from .retrieval import Candidates, RetrievalSettings, Retriever
from .storage import Collection

DEPTH = 100
FUSION_GRID = (
    [("adaptive", w) for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
    + [("convex", w) for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
    + [("rrf", 0.5)]
)
# Title, headings, body. FTS5's bm25() fixes k1 and b (1.2, 0.75); its column weights
# are the BM25 parameters a collection can change (BM25F-style field weighting).
BM25_WEIGHTS = [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.5, 1.0, 1.0), (1.0, 1.0, 2.0)]
DOCUMENT_PASSAGES = (1, 2)
MIN_RELEVANCE = tuple(round(0.05 * i, 2) for i in range(15))  # 0.0 .. 0.7
MIN_QUERIES_PER_FOLD = 2

Labels = tuple[dict[str, str], dict[str, dict[str, int]]]  # queries, judgements


@dataclass
class RelevanceFit:
    """How well a ``min_relevance`` threshold keeps judged-relevant passages in the
    prompt and leaves the others out (F2: a relevant passage lost costs more)."""

    threshold: float
    f2: float
    relevant_kept: float  # share of relevant passages among the top_k that pass
    others_dropped: float  # share of not-relevant ones that do not


@dataclass
class FoldResult:
    queries: int
    current: float  # nDCG@10 of the collection's current settings on this fold
    tuned: float  # of the settings chosen on the other folds
    chosen: dict[str, Any]


@dataclass
class TuneReport:
    collection: str
    queries: int
    folds: list[FoldResult]
    current: dict[str, Any]
    chosen: dict[str, Any]
    before: float  # mean held-out nDCG@10, current settings
    after: float  # mean held-out nDCG@10, tuned settings
    relevance_before: RelevanceFit
    relevance_after: RelevanceFit  # threshold chosen per fold, measured held out
    saved: bool
    combinations: int
    skipped_queries: int = 0  # labelled queries with no relevant document in the collection
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def labels_from_file(
    workspace: Any, path: Path, collection: str | None, split: str, progress: Any = None
) -> tuple[Labels, str]:
    """Labelled queries and the collection they judge, read as ``eval retrieval`` reads
    them (a BEIR corpus is ingested first)."""
    queries, qrels, name, _ = judged_queries(workspace, path, collection, split, progress)
    return (queries, qrels), name


def labels_from_feedback(workspace: Any, collection: str) -> Labels:
    """Rated answers as labels: sources a 👍 answer cited are relevant to its question;
    sources only ever cited by 👎 answers are judged not relevant."""
    root = str(workspace.path.resolve()) + "/"
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for row in workspace.store.feedback():
        qid = f"feedback:{' '.join(row['question'].split()).lower()}"
        for citation in row["citations"]:
            source = citation.get("source") if isinstance(citation, dict) else None
            if not isinstance(source, str) or citation.get("collection", collection) != collection:
                continue
            if not source.startswith("/") and "://" not in source:
                source = root + source  # the API shows uploads relative to the workspace
            queries[qid] = row["question"]
            grades = qrels.setdefault(qid, {})
            grades[source] = max(grades.get(source, 0), 1 if row["rating"] > 0 else 0)
    return queries, qrels


def tune(
    workspace: Any,
    labels: Labels,
    collection: str,
    folds: int = 5,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
) -> TuneReport:
    """Choose, cross-validate and (unless ``dry_run`` or no better) save the settings."""
    target = workspace.collection(collection, create=False)
    queries, qrels = _answerable(workspace, target, *labels)
    skipped = len(labels[0]) - len(queries)
    folds = min(folds, len(queries) // MIN_QUERIES_PER_FOLD)
    if folds < 2:
        raise CitewiseError(
            f"tuning needs at least {2 * MIN_QUERIES_PER_FOLD} labelled queries with a relevant "
            f"document in {collection!r}; found {len(queries)}"
        )
    retriever: Retriever = workspace.retriever()
    current = retriever.settings_of([target])
    weights = BM25_WEIGHTS if workspace.sparse.current(target) is None else [(1.0, 1.0, 1.0)]
    kept = _candidate_lists(retriever, target, queries, weights, progress)
    sources = workspace.store.chunk_sources(
        sorted(
            {
                c
                for lists in kept.values()
                for found in lists.values()
                for c, _ in found.bm25 + found.dense
            }
        )
    )
    grid, current_row = _grid(current, weights)
    ids = list(queries)
    scores = _score_grid(retriever, grid, kept, qrels, sources, ids)  # [settings, query]
    assignment = _folds(ids, folds, seed)
    results = []
    for fold in range(folds):
        train = np.array([assignment[q] != fold for q in ids])
        best_row = _choose(scores[:, train], current_row)
        results.append(
            FoldResult(
                int((~train).sum()),
                float(scores[current_row, ~train].mean()),
                float(scores[best_row, ~train].mean()),
                grid[best_row].to_json(),
            )
        )
    before = _weighted(results, lambda r: r.current)
    after = _weighted(results, lambda r: r.tuned)
    # Ranking settings change only when held-out queries say so; the threshold likewise.
    ranking = grid[_choose(scores, current_row)] if after > before else grid[current_row]
    fits = _relevance_fits(
        retriever, target, kept, qrels, sources, queries, ranking, workspace.settings.top_k
    )
    relevance_before = _fit(fits, ids, current.min_relevance)
    relevance_after = _held_out_threshold(fits, ids, assignment, folds)
    threshold = current.min_relevance
    if relevance_after.f2 > relevance_before.f2:
        threshold = _best_threshold(fits, ids).threshold
    chosen = replace(ranking, min_relevance=threshold)
    notes = []
    if after <= before:
        notes.append("no ranking settings beat the current ones on held-out queries; kept")
    if threshold == current.min_relevance:
        notes.append("min_relevance kept: no threshold did better on held-out queries")
    saved = chosen != current and not dry_run
    report = TuneReport(
        collection,
        len(queries),
        results,
        current.to_json(),
        chosen.to_json(),
        before,
        after,
        relevance_before,
        relevance_after,
        saved,
        len(grid),
        skipped,
        notes,
    )
    if saved:
        workspace.store.set_collection_settings(target.id, chosen.to_json(), report.to_json())
    return report


def reset(workspace: Any, collection: str) -> bool:
    """Forget a collection's tuned settings (re-embedding it with the workspace's embedder
    if it had a fine-tuned one); returns whether it had any."""
    target = workspace.collection(collection, create=False)
    tuned = workspace.tuned_settings(target)
    workspace.store.set_collection_settings(target.id, None, {})
    if tuned is not None and tuned.embedder:
        workspace.reindex(collection)
    return tuned is not None


# -- the pieces ------------------------------------------------------------------------


def _answerable(
    workspace: Any, target: Collection, queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> Labels:
    """The labelled queries with at least one relevant document in the collection."""
    known = set(workspace.store.sources(target.id))
    kept_queries, kept_qrels = {}, {}
    for qid, grades in qrels.items():
        present = {doc: grade for doc, grade in grades.items() if doc in known}
        if any(grade > 0 for grade in present.values()) and qid in queries:
            kept_queries[qid], kept_qrels[qid] = queries[qid], present
    return kept_queries, kept_qrels


def _candidate_lists(
    retriever: Retriever,
    target: Collection,
    queries: dict[str, str],
    weights: list[tuple[float, float, float]],
    progress: Callable[[int, int], None] | None,
) -> dict[str, dict[tuple[float, float, float], Candidates]]:
    """Each query's keyword list per column weighting and its vector list, searched once."""
    kept = {}
    for done, (qid, text) in enumerate(queries.items(), start=1):
        dense = retriever.find(text, [target], DEPTH, "dense").dense
        # With the query: the grid is scored as search ranks, exact matches first.
        kept[qid] = {
            w: Candidates(_keyword(retriever, target, text, w), dense, text) for w in weights
        }
        if progress:
            progress(done, len(queries))
    return kept


def _keyword(
    retriever: Retriever, target: Collection, text: str, weights: tuple[float, float, float]
) -> list[tuple[int, float]]:
    settings = RetrievalSettings(bm25_weights=weights)
    return retriever.find(text, [target], DEPTH, "bm25", settings=settings).bm25


def _grid(
    current: RetrievalSettings, weights: list[tuple[float, float, float]]
) -> tuple[list[RetrievalSettings], int]:
    """Every combination, and the row of the current settings (added when off the grid)."""
    grid = [
        RetrievalSettings(
            fusion, dense_weight, w, passages, current.min_relevance, current.embedder
        )
        for (fusion, dense_weight), w, passages in product(FUSION_GRID, weights, DOCUMENT_PASSAGES)
    ]
    if current.fusion == "rrf":
        current = replace(current, dense_weight=0.5)  # rrf has no weight
    if current.bm25_weights not in weights:  # a bm25s-indexed collection: weights unused
        current = replace(current, bm25_weights=weights[0])
    if current not in grid:
        grid.append(current)
    return grid, grid.index(current)


def _score_grid(
    retriever: Retriever,
    grid: list[RetrievalSettings],
    kept: dict[str, dict[tuple[float, float, float], Candidates]],
    qrels: dict[str, dict[str, int]],
    sources: dict[int, str],
    ids: list[str],
) -> np.ndarray:
    """nDCG@10 of every settings combination on every query."""
    scores = np.zeros((len(grid), len(ids)))
    for row, settings in enumerate(grid):
        run = {}
        for qid in ids:
            ranked = retriever.rank(kept[qid][settings.bm25_weights], settings)[:DEPTH]
            run[qid] = _document_scores(ranked, sources)
        per_query = evaluate_run(qrels, run)["per_query"]
        scores[row] = [per_query[qid]["ndcg_cut_10"] for qid in ids]
    return scores


def _choose(scores: np.ndarray, current_row: int) -> int:
    """The best row on these queries, if it beats the current settings by more than one
    standard error of the per-query difference (the one-standard-error rule): among
    88 combinations the best on a sample is partly luck, and luck does not carry over
    to new queries (measured on SciFact: plain argmax lost 0.006 nDCG@10 held out)."""
    best = int(np.argmax(scores.mean(axis=1)))
    difference = scores[best] - scores[current_row]
    standard_error = difference.std(ddof=1) / np.sqrt(len(difference))
    return best if difference.mean() > standard_error else current_row


def _document_scores(ranked: Iterable[Any], sources: dict[int, str]) -> dict[str, float]:
    hits = [_Scored(sources[r.chunk_id], r.score) for r in ranked if r.chunk_id in sources]
    return document_run(hits)


@dataclass
class _Scored:
    source: str
    score: float


def _folds(ids: list[str], folds: int, seed: int) -> dict[str, int]:
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    return {qid: i % folds for i, qid in enumerate(shuffled)}


def _weighted(results: list[FoldResult], score: Callable[[FoldResult], float]) -> float:
    total = sum(r.queries for r in results)
    return sum(score(r) * r.queries for r in results) / total


# -- min_relevance ---------------------------------------------------------------------

# Per query: (cosine, is the passage's document relevant) of the chosen settings' top_k.
_Fits = dict[str, list[tuple[float, bool]]]


def _relevance_fits(
    retriever: Retriever,
    target: Collection,
    kept: dict[str, dict[tuple[float, float, float], Candidates]],
    qrels: dict[str, dict[str, int]],
    sources: dict[int, str],
    queries: dict[str, str],
    settings: RetrievalSettings,
    top_k: int,
) -> _Fits:
    fits: _Fits = {}
    for qid, lists in kept.items():
        found = lists[settings.bm25_weights]
        top = retriever.rank(found, settings)[:top_k]
        cosines = dict(found.dense)
        missing = [r.chunk_id for r in top if r.chunk_id not in cosines]
        if missing:
            cosines.update(retriever.cosines(queries[qid], [target], missing))
        fits[qid] = [
            (cosines.get(r.chunk_id, 0.0), qrels[qid].get(sources.get(r.chunk_id, ""), 0) > 0)
            for r in top
        ]
    return fits


def _fit(fits: _Fits, ids: Iterable[str], threshold: float) -> RelevanceFit:
    kept_relevant = lost_relevant = kept_other = dropped_other = 0
    for qid in ids:
        for cosine, relevant in fits[qid]:
            passes = cosine >= threshold
            if relevant:
                kept_relevant += passes
                lost_relevant += not passes
            else:
                kept_other += passes
                dropped_other += not passes
    precision = kept_relevant / max(kept_relevant + kept_other, 1)
    recall = kept_relevant / max(kept_relevant + lost_relevant, 1)
    f2 = 5 * precision * recall / (4 * precision + recall) if precision + recall else 0.0
    return RelevanceFit(threshold, f2, recall, dropped_other / max(kept_other + dropped_other, 1))


def _best_threshold(fits: _Fits, ids: list[str]) -> RelevanceFit:
    # Ties go to the lower threshold: a passage left out of the prompt cannot be cited.
    return max((_fit(fits, ids, t) for t in MIN_RELEVANCE), key=lambda f: (f.f2, -f.threshold))


def _held_out_threshold(
    fits: _Fits, ids: list[str], assignment: dict[str, int], folds: int
) -> RelevanceFit:
    """Each fold judged with the threshold chosen on the others, pooled."""
    pooled: _Fits = {}
    thresholds = []
    for fold in range(folds):
        train = [q for q in ids if assignment[q] != fold]
        threshold = _best_threshold(fits, train).threshold
        thresholds.append(threshold)
        for qid in ids:
            if assignment[qid] == fold:
                pooled[qid] = [(c - threshold, r) for c, r in fits[qid]]
    held_out = _fit(pooled, ids, 0.0)
    return replace(held_out, threshold=float(np.median(thresholds)))


# -- the embedder ----------------------------------------------------------------------


@dataclass
class EmbedderReport:
    collection: str
    held_out_queries: int  # one fold of five, never trained on
    training_examples: int
    before: float  # hybrid nDCG@10 on the held-out fold, current embedder
    after: float  # the same with the model fine-tuned on the other folds
    dense_before: float
    dense_after: float
    seconds: float
    saved: bool
    embedder: str  # the saved model's spec ("" when nothing was saved)
    held_out_fold: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tune_embedder(
    workspace: Any,
    labels: Labels,
    collection: str,
    epochs: int = 3,
    dry_run: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    seed: int = 0,
    held_out_fold: int = 0,
) -> EmbedderReport:
    """Fine-tune the embedder on four folds of the labels and measure it on the fifth
    (``held_out_fold``) against the current one (the collection untouched: the held-out
    fold is searched with vectors computed in memory). When it helps and this is no dry
    run, train on every label, re-embed the collection with the result and save it as its
    embedder. One fold keeps the cost to one training run; a benchmark measures all five."""
    if not 0 <= held_out_fold < 5:
        raise CitewiseError(f"held_out_fold is one of 0-4, not {held_out_fold}")
    from .finetune import finetune_embedder, training_triples

    started = time.perf_counter()
    target = workspace.collection(collection, create=False)
    queries, qrels = _answerable(workspace, target, *labels)
    if len(queries) < 5 * MIN_QUERIES_PER_FOLD:
        raise CitewiseError(
            f"fine-tuning needs at least {5 * MIN_QUERIES_PER_FOLD} labelled "
            f"queries in {collection!r}; found {len(queries)}"
        )
    assignment = _folds(list(queries), 5, seed)
    held = {q: t for q, t in queries.items() if assignment[q] == held_out_fold}
    train = {q: t for q, t in queries.items() if assignment[q] != held_out_fold}
    retriever: Retriever = workspace.retriever()
    settings = retriever.settings_of([target])

    def report(stage: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(stage, done, total)) if progress else None

    triples = training_triples(workspace, target, train, qrels)
    models = workspace.path / "models"
    fold_model = finetune_embedder(
        triples,
        models / f"{collection}.fold",
        epochs=epochs,
        seed=seed,
        progress=report("training on 4 folds"),
    )
    current = _held_out_scores(workspace, retriever, target, held, qrels, settings, None)
    tuned = _held_out_scores(
        workspace, retriever, target, held, qrels, settings, workspace.embedder(fold_model.spec)
    )
    shutil.rmtree(fold_model.folder, ignore_errors=True)
    saved, spec = False, ""
    if tuned[0] > current[0] and not dry_run:
        name = f"{collection}-{time.strftime('%Y%m%d-%H%M%S')}"
        final = finetune_embedder(
            training_triples(workspace, target, queries, qrels),
            models / name,
            epochs=epochs,
            seed=seed,
            progress=report("training on all labels"),
        )
        workspace.reindex(collection, final.spec)
        workspace.store.set_collection_settings(
            target.id, replace(settings, embedder=final.spec).to_json(), {}
        )
        saved, spec = True, final.spec
    return EmbedderReport(
        collection,
        len(held),
        len(triples),
        current[0],
        tuned[0],
        current[1],
        tuned[1],
        time.perf_counter() - started,
        saved,
        spec,
        held_out_fold,
    )


def _held_out_scores(
    workspace: Any,
    retriever: Retriever,
    target: Collection,
    held: dict[str, str],
    qrels: dict[str, dict[str, int]],
    settings: RetrievalSettings,
    embedder: Any,
) -> tuple[float, float]:
    """Mean hybrid and dense nDCG@10 of the held-out queries; with ``embedder``, the
    vectors are that model's, computed in memory (the stored ones are not touched)."""
    if embedder is not None:
        ids, texts = workspace.chunk_texts(target)
        matrix = embedder.embed(texts)
        chunk_ids = np.asarray(ids)
    hybrid_run, dense_run = {}, {}
    for qid, text in held.items():
        found = retriever.find(text, [target], DEPTH, "hybrid", settings=settings)
        if embedder is not None:
            scores = matrix @ embedder.embed_batch([text])[0]
            top = np.argsort(-scores)[:DEPTH]
            dense = [(int(chunk_ids[i]), float(scores[i])) for i in top]
            found = Candidates(found.bm25, dense, found.query)
        sources = workspace.store.chunk_sources([c for c, _ in found.bm25 + found.dense])
        hybrid_run[qid] = _document_scores(retriever.rank(found, settings)[:DEPTH], sources)
        dense_run[qid] = document_run(
            [_Scored(sources[c], s) for c, s in found.dense if c in sources]
        )
    judged = {q: qrels[q] for q in held}
    return (
        evaluate_run(judged, hybrid_run)["mean"]["nDCG@10"],
        evaluate_run(judged, dense_run)["mean"]["nDCG@10"],
    )
