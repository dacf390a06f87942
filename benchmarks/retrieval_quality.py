"""Retrieval quality on SciFact (train) and CISI (test): every mode beside a reference BM25.

    python benchmarks/retrieval_quality.py [--datasets DIR] [--workspaces DIR] [--json FILE]

For each dataset, in one run on one machine:

* **reference**: BM25 with ``bm25s`` as the datasets' READMEs describe it (Lucene IDF,
  k1 1.5, b 0.75, English stop words, Snowball stemmer, title + text, a document a unit);
* **citewise**: each mode through ``Workspace.search`` with the default settings — the
  keyword side is FTS5 (collections below ``sparse_threshold``); the bm25s index that
  serves bigger collections is built here on the same chunks and measured too;
* **fusion**: rrf, convex 0.5 and adaptive (the default) on the same candidate lists;
* **tried**: changes to the default fusion measured toward SciFact's 0.74, not adopted;
* **causes** of the keyword gap the issue reported, each changed alone and measured;
* **tune**: ``citewise tune``'s cross-validated before/after (5 folds, nothing saved).

Documents are judged as ``citewise eval retrieval`` judges them: by their best chunk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bm25s
import Stemmer

from _stats import measured_on
from citewise import Workspace
from citewise.evaluation import MEASURES, BeirDataset, document_run, evaluate_run, load_beir
from citewise.index.sparse import SparseIndex
from citewise.keywords import _WORD, STOPWORDS
from citewise.retrieval import Candidates, RetrievalSettings, fuse, with_document_support
from citewise.tuning import tune

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {"scifact": "train", "cisi": "test"}
DEPTH = 100
SCIFACT_TARGET = 0.74
Run = dict[str, dict[str, float]]


def dataset_parser(
    workspaces: str = "Workspaces are <DIR>/citewise-bench-<dataset> (reused).",
) -> argparse.ArgumentParser:
    """The options of a benchmark on the shared datasets: --datasets, --workspaces (its help
    says what the benchmark keeps there) and --json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=Path, default=SHARED)
    parser.add_argument("--workspaces", type=Path, default=Path("/tmp"), help=workspaces)
    parser.add_argument("--json", type=Path)
    return parser


def main() -> None:
    args = dataset_parser().parse_args()
    results = {}
    for name, split in DATASETS.items():
        root = args.datasets / name
        if not (root / "corpus.jsonl").exists():
            sys.exit(f"dataset not found at {root}")
        print(f"\n## {name} ({split} split)")
        results[name] = measure(name, root, split, args.workspaces / f"citewise-bench-{name}")
    summarise(results)
    if args.json:
        args.json.write_text(json.dumps(results | {"measured": measured_on()}, indent=2) + "\n")


def measure(name: str, root: Path, split: str, workspace: Path) -> dict:
    data = load_beir(root, split)
    ws = Workspace.open(workspace)
    report = ws.add_items(data.corpus_items(), name)
    print(f"ingest: +{report.added} ={report.unchanged} in {report.seconds:.1f}s")
    collection = ws.collection(name, create=False)
    ws.store.set_collection_settings(collection.id, None, {})  # the defaults, never a tuned set
    rows: dict[str, dict] = {"reference bm25s": scored(data, reference_run(root, data))}
    timings = {}
    for mode in ("bm25", "dense", "hybrid"):
        run, times = mode_run(ws, name, data, mode)
        timings[mode] = round(statistics.median(times) * 1000, 1)
        label = "hybrid (default: adaptive)" if mode == "hybrid" else mode
        rows[label] = scored(data, run, f"p50 {timings[mode]} ms")
    rows["bm25, bm25s index (above sparse_threshold)"] = scored(data, sparse_run(ws, name, data))
    rows.update(fusion_rows(ws, name, data))
    rows.update(cause_rows(ws, name, root, data))
    rows.update(tune_rows(ws, name, data))
    return rows


def mode_run(ws: Workspace, name: str, data: BeirDataset, mode: str) -> tuple[Run, list[float]]:
    """Each query's documents (judged by their best chunk) in one search mode, and each
    search's time in seconds."""
    times, run = [], {}
    for qid, text in data.queries.items():
        started = time.perf_counter()
        hits = ws.search(text, DEPTH, [name], mode)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
        run[qid] = document_run(hits)
    return run, times


def scored(data: BeirDataset, run: Run, note: str = "") -> dict[str, float]:
    return {k: round(v, 4) for k, v in evaluate_run(data.qrels, run)["mean"].items()} | (
        {"note": note} if note else {}
    )


def show(label: str, row: dict) -> None:
    cells = "  ".join(f"{m} {row[m]:.3f}" for m in MEASURES.values())
    print(f"{label:48s} {cells}  {row.get('note', '')}")


# -- the reference and citewise's own bm25s path ---------------------------------------


def reference_run(
    root: Path,
    data: BeirDataset,
    k1: float = 1.5,
    method: str = "lucene",
    stemmer: str = "english",
    deduplicate: bool = False,
) -> Run:
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").open()]
    ids = [str(doc["_id"]) for doc in corpus]
    texts = [f"{doc.get('title') or ''} {doc.get('text') or ''}" for doc in corpus]
    stem = Stemmer.Stemmer(stemmer)
    retriever = bm25s.BM25(k1=k1, b=0.75, method=method)
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False),
        show_progress=False,
    )
    queries = list(data.queries.items())
    tokenized = bm25s.tokenize(
        [t for _, t in queries], stopwords="en", stemmer=stem, return_ids=False, show_progress=False
    )
    run: Run = {}
    for (qid, _), tokens in zip(queries, tokenized, strict=True):
        tokens = [t for t in tokens if t in retriever.vocab_dict]
        if deduplicate:
            tokens = list(dict.fromkeys(tokens))
        if not tokens:
            run[qid] = {}
            continue
        rows, scores = retriever.retrieve([tokens], k=DEPTH, show_progress=False, n_threads=1)
        run[qid] = {ids[r]: float(s) for r, s in zip(rows[0], scores[0], strict=True)}
    return run


def chunk_run(
    ws: Workspace, ranked: Callable[[str], list[tuple[int, float]]], data: BeirDataset
) -> Run:
    """A document run from (chunk id, score) lists: each document scores as its best chunk."""
    run: Run = {}
    for qid, text in data.queries.items():
        pairs = ranked(text)
        sources = ws.store.chunk_sources([c for c, _ in pairs])
        best: dict[str, float] = {}
        for chunk_id, score in pairs:
            source = sources[chunk_id]
            best[source] = max(best.get(source, float("-inf")), score)
        run[qid] = best
    return run


def sparse_run(ws: Workspace, name: str, data: BeirDataset) -> Run:
    collection = ws.collection(name, create=False)
    index = SparseIndex.build(ws.store.search_texts(collection.id))
    return chunk_run(ws, lambda text: index.search(text, DEPTH), data)


# -- fusion ------------------------------------------------------------------------------


def fusion_rows(ws: Workspace, name: str, data: BeirDataset) -> dict[str, dict]:
    retriever, collections = ws.retriever(), ws.collections([name])
    found = {q: retriever.find(t, collections, DEPTH) for q, t in data.queries.items()}
    texts = {t: q for q, t in data.queries.items()}
    rows = {}
    for label, settings in (
        ("hybrid rrf", RetrievalSettings(fusion="rrf")),
        ("hybrid convex 0.5", RetrievalSettings(fusion="convex")),
        ("hybrid adaptive 0.5 (default)", RetrievalSettings()),
    ):

        def ranked(text: str, settings: RetrievalSettings = settings) -> list[tuple[int, float]]:
            return [(r.chunk_id, r.score) for r in retriever.rank(found[texts[text]], settings)]

        rows[label] = scored(data, chunk_run(ws, ranked, data))
    rows.update(attempt_rows(ws, name, data, found))
    return rows


def attempt_rows(
    ws: Workspace, name: str, data: BeirDataset, found: dict[str, Candidates]
) -> dict[str, dict]:
    """Changes to the default fusion tried toward SciFact's 0.74 and not adopted (README),
    each on the same candidate lists as the default."""
    retriever, collections = ws.retriever(), ws.collections([name])
    texts = {t: q for q, t in data.queries.items()}
    chunk_ids = sorted({c for f in found.values() for c, _ in f.bm25 + f.dense})
    documents = ws.store.chunk_documents(chunk_ids)

    def per_document(text: str) -> list[tuple[int, float]]:
        """Each side's best passage per document, fused as documents."""
        f = found[texts[text]]
        bm25, dense = _best_per_document(f.bm25, documents), _best_per_document(f.dense, documents)
        passage = {documents[c]: c for c, _ in bm25} | {documents[c]: c for c, _ in dense}
        by_document = [[(documents[c], s) for c, s in side] for side in (bm25, dense)]
        return [(passage[r.chunk_id], r.score) for r in fuse(*by_document, "adaptive", 0.5)]

    def cosines_filled(text: str) -> list[tuple[int, float]]:
        """Keyword-only passages get their real cosine, not the vector list's floor."""
        f = found[texts[text]]
        missing = sorted({c for c, _ in f.bm25} - {c for c, _ in f.dense})
        cosines = retriever.cosines(text, collections, missing)
        floor = min(s for _, s in f.dense)
        extra = [(c, max(cosines[c], floor)) for c in missing if c in cosines]
        dense = sorted(f.dense + extra, key=lambda pair: -pair[1])
        return [(r.chunk_id, r.score) for r in fuse(f.bm25, dense, "adaptive", 0.5)]

    def document_support(text: str) -> list[tuple[int, float]]:
        """A passage plus 0.3 times its document's next best passage."""
        ranked = retriever.rank(found[texts[text]], RetrievalSettings())
        return [(r.chunk_id, r.score) for r in with_document_support(ranked, documents, 2, 0.3)]

    return {
        "tried: fusion per document": scored(data, chunk_run(ws, per_document, data)),
        "tried: real cosines for keyword-only passages": scored(
            data, chunk_run(ws, cosines_filled, data)
        ),
        "tried: + 0.3 x the document's next best passage": scored(
            data, chunk_run(ws, document_support, data)
        ),
    }


def _best_per_document(
    pairs: list[tuple[int, float]], documents: dict[int, int]
) -> list[tuple[int, float]]:
    seen: set[int] = set()
    best = []
    for chunk_id, score in pairs:
        if documents[chunk_id] not in seen:
            seen.add(documents[chunk_id])
            best.append((chunk_id, score))
    return best


# -- causes of the keyword gap -----------------------------------------------------------


def deduplicated_fts_query(text: str) -> str | None:
    """The FTS5 query citewise sent before: each word once."""
    words = [w.lower() for w in _WORD.findall(text)]
    unique = list(dict.fromkeys([w for w in words if w not in STOPWORDS] or words))
    return " OR ".join(f'"{w}"' for w in unique) if unique else None


def fts_query_with(stopwords: frozenset[str]) -> Callable[[str], str | None]:
    def query(text: str) -> str | None:
        words = [w.lower() for w in _WORD.findall(text)]
        content = [w for w in words if w not in stopwords] or words
        return " OR ".join(f'"{w}"' for w in content) if content else None

    return query


def cause_rows(ws: Workspace, name: str, root: Path, data: BeirDataset) -> dict[str, dict]:
    collection = ws.collection(name, create=False)

    def fts(query_of: Callable[[str], str | None], weights=(1.0, 1.0, 1.0)) -> Run:
        def ranked(text: str) -> list[tuple[int, float]]:
            match = query_of(text)
            return ws.store.bm25(match, [collection.id], DEPTH, None, weights) if match else []

        return chunk_run(ws, ranked, data)

    bm25s_stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN)
    return {
        "cause: FTS5, repeated query words dropped (before)": scored(
            data, fts(deduplicated_fts_query)
        ),
        "cause: FTS5, bm25s's stop-word list": scored(data, fts(fts_query_with(bm25s_stopwords))),
        "cause: FTS5, body column only": scored(
            data, fts(fts_query_with(STOPWORDS), (0.0, 0.0, 1.0))
        ),
        "cause: reference, query deduplicated": scored(
            data, reference_run(root, data, deduplicate=True)
        ),
        "cause: reference, Robertson IDF (FTS5's)": scored(
            data, reference_run(root, data, method="robertson")
        ),
        "cause: reference, Porter stems (FTS5's)": scored(
            data, reference_run(root, data, stemmer="porter")
        ),
        "cause: reference, k1 1.2 (FTS5's)": scored(data, reference_run(root, data, k1=1.2)),
    }


# -- tune --------------------------------------------------------------------------------


def tune_rows(ws: Workspace, name: str, data: BeirDataset) -> dict[str, dict]:
    started = time.perf_counter()
    report = tune(ws, (data.queries, data.qrels), name, folds=5, dry_run=True)
    seconds = time.perf_counter() - started
    changed = {k: v for k, v in report.chosen.items() if report.current.get(k) != v}
    return {
        "tune (5-fold CV, held out)": {
            "before nDCG@10": round(report.before, 4),
            "after nDCG@10": round(report.after, 4),
            "chosen": changed or "the defaults",
            "seconds": round(seconds, 1),
        }
    }


def summarise(results: dict[str, dict]) -> None:
    for name, rows in results.items():
        print(f"\n## {name}")
        for label, row in rows.items():
            if "nDCG@10" in row:
                show(label, row)
            else:
                print(f"{label:48s} {row}")
        ndcg = {label: row.get("nDCG@10") for label, row in rows.items()}
        bm25, reference = ndcg["bm25"], ndcg["reference bm25s"]
        hybrid, best_single = ndcg["hybrid (default: adaptive)"], max(ndcg["bm25"], ndcg["dense"])
        targets = {
            "bm25 within 0.01 of bm25s": abs(bm25 - reference) <= 0.01,
            "hybrid >= max(bm25, dense)": hybrid >= best_single,
        }
        if name == "scifact":  # the default's own target (issue 15), not reached: README
            targets[f"hybrid >= {SCIFACT_TARGET}"] = hybrid >= SCIFACT_TARGET
        rows["targets"] = targets
        print(f"targets: {targets}")


if __name__ == "__main__":
    main()
