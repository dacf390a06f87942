"""`citewise tune`: settings learnt from labels by cross-validation, saved, then used."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from citewise import Workspace
from citewise.errors import CitewiseError, WorkspaceError
from citewise.evaluation import evaluate_retrieval, load_labelled_queries
from citewise.retrieval import Ranked, RetrievalSettings, with_document_support
from citewise.tuning import _best_threshold, _fit, labels_from_feedback, reset, tune
from citewise.workspace import init_workspace
from conftest import CITEWISE

THINGS = ["pressure valve", "drive belt", "bearing", "seal kit", "fuse"]
SYSTEMS = ["pump assembly", "conveyor", "compressor"]


def write_catalogue(root: Path, parts: int = 36) -> Path:
    """Spare parts that differ only in their code: words match the code, vectors barely
    tell the parts apart. The codes are letters only: a code with digits is an identifier,
    which hybrid search ranks first whatever the fusion (test_identifiers.py), and this
    catalogue is about the fusion. Returns the labels file (a query per part)."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    rng = random.Random(7)
    labels = []
    for i, number in enumerate(rng.sample(range(3**4), parts)):  # distinct codes
        code = "QX" + "".join("XQZ"[number // 3**k % 3] for k in range(4))
        path = corpus / f"part-{i:02d}.md"
        path.write_text(
            f"# Spare part {code}\n\n{code} is a {THINGS[i % 5]} for the {SYSTEMS[i % 3]}. "
            f"Order {code} from the spare parts catalogue; it ships in two days.\n"
        )
        labels.append({"query": f"how long does delivery of {code} take", "relevant": [str(path)]})
    (root / "labels.jsonl").write_text("\n".join(json.dumps(line) for line in labels) + "\n")
    return root / "labels.jsonl"


@pytest.fixture(scope="module")
def catalogue_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalogue")
    write_catalogue(root)
    # A poor configuration on purpose: vectors dominate a collection they cannot rank.
    init_workspace(root / "ws")
    config = root / "ws" / "citewise.toml"
    text = config.read_text().replace('# fusion = "adaptive"', 'fusion = "convex"')
    config.write_text(text.replace("# dense_weight = 0.5", "dense_weight = 0.9"))
    with Workspace.open(root / "ws") as ws:
        assert (ws.settings.fusion, ws.settings.dense_weight) == ("convex", 0.9)
        assert ws.ingest([root / "corpus"]).added == 36
    return root


@pytest.fixture
def catalogue(catalogue_template: Path, tmp_path: Path):
    shutil.copytree(catalogue_template, tmp_path / "c")
    root = tmp_path / "c"
    # Sources are absolute paths: rewrite the labels for the copy's location.
    labels = (root / "labels.jsonl").read_text().replace(str(catalogue_template), str(root))
    (root / "labels.jsonl").write_text(labels)
    ws = Workspace.open(root / "ws")
    ws.store.db.execute(
        "UPDATE documents SET source = replace(source, ?, ?)", (str(catalogue_template), str(root))
    )
    ws.store.db.commit()
    yield ws, root / "labels.jsonl"
    ws.close()


def test_tune_replaces_a_poor_setting_measured_on_held_out_queries(catalogue) -> None:
    ws, labels = catalogue
    before = evaluate_retrieval(ws, labels, modes=("hybrid",)).means["hybrid"]["nDCG@10"]
    report = tune(ws, load_labelled_queries(labels), "default", folds=4)
    # Each fold is scored with settings chosen on the other three.
    assert len(report.folds) == 4 and sum(f.queries for f in report.folds) == 36
    assert report.before == pytest.approx(before, abs=1e-6)
    assert report.after > report.before + 0.1, report
    assert report.saved
    assert report.chosen["dense_weight"] < 0.9 or report.chosen["fusion"] == "rrf"
    # Searches of the collection use what was saved: eval now matches the held-out figure.
    tuned = ws.tuned_settings(ws.collection())
    assert tuned == RetrievalSettings.from_json(report.chosen)
    after = evaluate_retrieval(ws, labels, modes=("hybrid",)).means["hybrid"]["nDCG@10"]
    assert after > before + 0.1
    # Forgetting them brings the workspace's settings back.
    assert reset(ws, "default") is True
    assert ws.tuned_settings(ws.collection()) is None
    again = evaluate_retrieval(ws, labels, modes=("hybrid",)).means["hybrid"]["nDCG@10"]
    assert again == pytest.approx(before)


def test_tune_keeps_settings_that_nothing_beats(catalogue) -> None:
    """Already good settings stay: the saved state does not change on noise."""
    ws, labels = catalogue
    good = RetrievalSettings(fusion="adaptive", dense_weight=0.5)
    ws.store.set_collection_settings(ws.collection().id, good.to_json(), {})
    report = tune(ws, load_labelled_queries(labels), "default", folds=4)
    assert report.before == pytest.approx(1.0) and report.after == pytest.approx(1.0)
    assert report.current["fusion"] == "adaptive"
    assert report.chosen["fusion"] == "adaptive" and report.chosen["dense_weight"] == 0.5


def test_tune_cli_dry_run_reports_and_saves_nothing(catalogue) -> None:
    ws, labels = catalogue
    env_workspace = ["--workspace", str(ws.path)]
    result = subprocess.run(
        [CITEWISE, *env_workspace, "tune", str(labels), "--dry-run", "--json", "--folds", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["saved"] is False and report["after"] > report["before"]
    shown = subprocess.run(
        [CITEWISE, *env_workspace, "tune", "--show"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0 and shown.stdout.strip() == "null"
    missing = subprocess.run(
        [CITEWISE, *env_workspace, "tune"], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode != 0 and "LABELS" in missing.stderr


def test_too_few_labels_are_refused_with_the_count(catalogue) -> None:
    ws, labels = catalogue
    queries, qrels = load_labelled_queries(labels)
    few = {q: queries[q] for q in list(queries)[:3]}
    with pytest.raises(CitewiseError, match=r"at least 4 labelled queries.*found 3"):
        tune(ws, (few, {q: qrels[q] for q in few}), "default")
    # Labels naming documents the collection does not hold do not count.
    elsewhere = {q: {"/nowhere.md": 1} for q in queries}
    with pytest.raises(CitewiseError, match="found 0"):
        tune(ws, (queries, elsewhere), "default")


def test_feedback_becomes_labels(catalogue) -> None:
    ws, _ = catalogue
    sources = ws.store.sources(ws.collection().id)
    first, second = sorted(sources)[:2]
    inside = str(ws.path.resolve()) + "/uploads/a.md"
    ws.store.add_feedback(
        "k",
        1,
        "Delivery of QX?",
        "Two days [1].",
        [{"source": first, "collection": "default"}],
        None,
        None,
    )
    ws.store.add_feedback(
        "k",
        -1,
        "delivery of  qx?",
        "No idea [1].",
        [{"source": second}, {"source": "uploads/a.md"}],
        None,
        None,
    )
    ws.store.add_feedback(
        "k", 1, "Other collection", "x", [{"source": first, "collection": "ops"}], None, None
    )
    queries, qrels = labels_from_feedback(ws, "default")
    # One question however it was typed; 👍 sources relevant, 👎-only ones judged not;
    # sources the API showed relative to the workspace are made whole again.
    assert list(queries.values()) == ["delivery of  qx?"]
    (grades,) = qrels.values()
    assert grades == {first: 1, second: 0, inside: 0}


def test_min_relevance_is_the_threshold_that_best_separates() -> None:
    fits = {
        "q1": [(0.62, True), (0.41, False), (0.38, False)],
        "q2": [(0.55, True), (0.52, True), (0.30, False)],
    }
    best = _best_threshold(fits, ["q1", "q2"])
    assert 0.42 <= best.threshold <= 0.52
    assert best.relevant_kept == 1.0 and best.others_dropped == 1.0
    assert _fit(fits, ["q1", "q2"], 0.6).relevant_kept == pytest.approx(1 / 3)


def test_document_support_adds_a_documents_next_passages() -> None:
    ranked = [Ranked(1, 0.9), Ranked(2, 0.8), Ranked(3, 0.7), Ranked(4, 0.1)]
    documents = {1: 10, 2: 20, 3: 20, 4: 10}
    boosted = with_document_support(ranked, documents, 2)
    assert [(r.chunk_id, round(r.score, 2)) for r in boosted] == [
        (2, 1.5),
        (3, 1.5),
        (1, 1.0),
        (4, 1.0),
    ]
    assert with_document_support(ranked, documents, 1) == ranked


def test_saved_settings_are_checked() -> None:
    with pytest.raises(WorkspaceError, match="bad retrieval settings"):
        RetrievalSettings.from_json({"fusion": "sum"})
    settings = RetrievalSettings("convex", 0.3, (2.0, 1.0, 1.0), 2, 0.4)
    assert RetrievalSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings


def test_the_readme_example_labels_name_demo_documents() -> None:
    from citewise.demo import demo_items

    queries, qrels = load_labelled_queries(
        Path(__file__).parents[1] / "examples" / "python-docs-labels.jsonl"
    )
    sources = {item.source for item in demo_items()}
    assert len(queries) == 48
    assert {doc for grades in qrels.values() for doc in grades} <= sources
