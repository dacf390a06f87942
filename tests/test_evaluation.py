"""Metric plumbing on a dataset small enough to check by hand."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from citewise import CitewiseError, Workspace
from citewise.evaluation import evaluate_retrieval, evaluate_run, load_beir
from conftest import CITEWISE, write_beir_dataset

CORPUS = [
    {
        "_id": "d1",
        "title": "Apples",
        "text": "Apples are a red fruit that grows on trees in orchards.",
    },
    {
        "_id": "d2",
        "title": "Bananas",
        "text": "Bananas are a yellow tropical fruit rich in potassium.",
    },
    {"_id": "d3", "title": "Cars", "text": "Cars have four wheels and an engine burning petrol."},
    {"_id": "d4", "title": "Trains", "text": "Trains run on steel rails between stations."},
]
QUERIES = [
    {"_id": "q1", "text": "red apples orchard"},
    {"_id": "q2", "text": "yellow bananas potassium"},
    {"_id": "q3", "text": "wheels engine petrol"},
]
# q1 also judges a document that does not exist; q9 is judged but has no query text.
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td99\t1\nq2\td2\t1\nq3\td3\t1\nq9\td4\t1\n"


def write_beir(root: Path) -> Path:
    return write_beir_dataset(root, CORPUS, QUERIES, QRELS)


def test_metrics_match_hand_computed_values(workspace: Workspace, tmp_path: Path) -> None:
    report = evaluate_retrieval(workspace, write_beir(tmp_path / "tiny"), modes=("bm25", "hybrid"))
    # q1: d1 at rank 1, d99 never: DCG = 1, IDCG = 1 + 1/log2(3); recall@10 = 1/2.
    q1_ndcg = 1 / (1 + 1 / math.log2(3))
    bm25 = report.per_query["bm25"]
    assert bm25["q1"]["ndcg_cut_10"] == pytest.approx(q1_ndcg)
    assert bm25["q1"]["recall_10"] == pytest.approx(0.5)
    assert bm25["q2"]["ndcg_cut_10"] == pytest.approx(1.0)
    assert report.means["bm25"]["nDCG@10"] == pytest.approx((q1_ndcg + 2) / 3)
    assert report.means["bm25"]["Recall@10"] == pytest.approx(2.5 / 3)
    assert report.means["bm25"]["MRR@10"] == pytest.approx(1.0)
    assert report.means["hybrid"]["MRR@10"] == pytest.approx(1.0)
    assert (report.unknown_documents, report.unknown_queries, report.queries) == (1, 1, 3)
    assert report.collection == "beir-tiny"


def test_reusing_the_ingested_corpus(workspace: Workspace, tmp_path: Path) -> None:
    dataset = write_beir(tmp_path / "tiny")
    evaluate_retrieval(workspace, dataset, modes=("bm25",))
    report = workspace.add_items(load_beir(dataset).corpus_items(), "beir-tiny")
    assert report.unchanged == 4 and report.added == 0


def test_mrr_counts_only_the_top_ten() -> None:
    run = {"q": {f"x{i}": 100.0 - i for i in range(10)} | {"rel": 1.0}}
    result = evaluate_run({"q": {"rel": 1}}, run)
    assert result["per_query"]["q"]["recip_rank"] == 0.0
    assert result["per_query"]["q"]["recall_100"] == 1.0


def test_labelled_queries_over_my_own_files(
    workspace: Workspace, corpus: Path, tmp_path: Path
) -> None:
    workspace.ingest([corpus])
    labelled = tmp_path / "labels.jsonl"
    lines = [
        {"query": "Where do visitors park?", "relevant": [str(corpus / "handbook.html")]},
        {"query": "daily meal allowance abroad", "relevant": [str(corpus / "travel.docx")]},
    ]
    labelled.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = evaluate_retrieval(workspace, labelled, modes=("hybrid",))
    assert report.means["hybrid"]["MRR@10"] == pytest.approx(1.0)
    assert report.unknown_documents == 0


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda root: (root / "queries.jsonl").unlink(), r"queries.jsonl: missing"),
        (
            lambda root: (root / "corpus.jsonl").write_text(
                '{"_id": "d1", "text": "ok"}\n{broken\n'
            ),
            r"corpus.jsonl:2: bad JSON",
        ),
        (
            lambda root: (root / "qrels" / "train.tsv").write_text(
                "query-id\tcorpus-id\tscore\nq1\td1\n"
            ),
            r"train.tsv:2: expected 3 columns",
        ),
    ],
)
def test_malformed_datasets_name_the_file_and_line(
    workspace: Workspace, tmp_path: Path, breakage, message: str
) -> None:
    root = write_beir(tmp_path / "tiny")
    breakage(root)
    with pytest.raises(CitewiseError, match=message):
        evaluate_retrieval(workspace, root, modes=("bm25",))


def test_bad_labelled_line_is_named(workspace: Workspace, tmp_path: Path) -> None:
    labelled = tmp_path / "labels.jsonl"
    labelled.write_text('{"query": "a", "relevant": ["x"]}\n{"query": "b"}\n')
    with pytest.raises(CitewiseError, match=r"labels.jsonl:2: expected"):
        evaluate_retrieval(workspace, labelled)


def test_cli_prints_the_table_and_saves_per_query_results(tmp_path: Path) -> None:
    dataset = write_beir(tmp_path / "tiny")
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            CITEWISE,
            "-w",
            str(tmp_path / "ws"),
            "eval",
            "retrieval",
            str(dataset),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "nDCG@10" in result.stdout and "hybrid" in result.stdout and "bm25" in result.stdout
    assert (
        "1 judged documents are not in the collection, 1 judged queries are missing"
        in result.stderr
    )
    saved = json.loads(out.read_text())
    assert set(saved["per_query"]["dense"]) == {"q1", "q2", "q3"}


def test_explain_one_query_per_mode(workspace: Workspace, tmp_path: Path) -> None:
    """The diagnosis behind a score: each mode's ranking with its scores, and where each
    relevant document sits — missed ones too."""
    from citewise.evaluation import explain_query

    dataset = write_beir(tmp_path / "fruit")
    explained = explain_query(workspace, dataset, "q1", top=2)
    assert explained.query == "red apples orchard"
    assert explained.relevant == {"d1": 1, "d99": 1}
    bm25 = explained.modes["bm25"]
    assert bm25.top[0].document == "d1" and bm25.top[0].relevance == 1
    assert bm25.top[0].score >= (bm25.top[1].score if len(bm25.top) > 1 else 0)
    assert bm25.ranks == {"d1": 1, "d99": None}  # d99 is not in the corpus at all
    report = evaluate_retrieval(workspace, dataset)
    for mode, result in explained.modes.items():  # the same nDCG@10 as the full evaluation
        assert result.ndcg10 == pytest.approx(report.per_query[mode]["q1"]["ndcg_cut_10"])
    with pytest.raises(CitewiseError, match="no judged query 'q7'"):
        explain_query(workspace, dataset, "q7")


def test_cli_explain_prints_rankings_and_misses(tmp_path: Path) -> None:
    dataset = write_beir(tmp_path / "fruit")
    result = subprocess.run(
        [
            CITEWISE,
            "-w",
            str(tmp_path / "ws"),
            "eval",
            "retrieval",
            str(dataset),
            "--explain",
            "q1",
            "--mode",
            "bm25",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "q1: red apples orchard" in result.stdout
    assert "bm25 · nDCG@10" in result.stdout and "d1" in result.stdout
    assert "missed: d99 — not in the first 100" in result.stdout
