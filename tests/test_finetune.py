"""Fine-tuning the embedder (the ``finetune`` extra, PyTorch): run by `make test` in the
environment that has PyTorch (.venv-bench), on a real model, real export, real re-embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citewise import Workspace
from citewise.embedders.onnx import OnnxEmbedder
from citewise.evaluation import load_labelled_queries
from citewise.tuning import reset, tune_embedder

pytestmark = [pytest.mark.finetune, pytest.mark.filterwarnings("ignore")]


@pytest.fixture
def catalogue(tmp_path: Path):
    from test_tuning import write_catalogue

    labels = write_catalogue(tmp_path, parts=40)
    ws = Workspace.open(tmp_path / "ws")
    assert ws.ingest([tmp_path / "corpus"]).added == 40
    yield ws, labels
    ws.close()


def reciprocal_ranks(ws: Workspace, labels: Path) -> list[float]:
    queries, qrels = load_labelled_queries(labels)
    ranks = []
    for qid, text in queries.items():
        hits = ws.search(text, 40, mode="dense")
        sources = [h.source for h in hits]
        (relevant,) = qrels[qid]
        ranks.append(1.0 / (sources.index(relevant) + 1) if relevant in sources else 0.0)
    return ranks


def test_training_triples_pair_each_query_with_its_passage_and_a_hard_negative(catalogue):
    from citewise.finetune import training_triples

    ws, labels = catalogue
    queries, qrels = load_labelled_queries(labels)
    triples = training_triples(ws, ws.collection(), queries, qrels)
    assert len(triples) == 40
    for triple, (qid, text) in zip(triples, queries.items(), strict=True):
        (source,) = qrels[qid]
        code = text.split()[-2]  # "how long does delivery of QX1234 take"
        assert triple.query == text
        assert code in triple.positive and code in Path(source).read_text()
        assert triple.negative is not None and code not in triple.negative


def test_finetuned_model_exports_loads_and_serves_the_collection(catalogue, tmp_path: Path):
    from citewise.embedders import load_embedder
    from citewise.finetune import finetune_embedder, training_triples

    ws, labels = catalogue
    queries, qrels = load_labelled_queries(labels)
    before = reciprocal_ranks(ws, labels)
    triples = training_triples(ws, ws.collection(), queries, qrels)
    steps = []
    model = finetune_embedder(
        triples,
        tmp_path / "model",
        epochs=3,
        batch_size=8,
        progress=lambda done, total: steps.append((done, total)),
    )
    assert steps[-1] == (15, 15) and model.examples == 40
    assert {p.name for p in model.folder.iterdir()} == {
        "model.onnx",
        "tokenizer.json",
        "citewise-model.json",
    }
    embedder = load_embedder(model.spec)
    base = ws.embedder()
    texts = [t.positive for t in triples[:5]]
    # A different model, still the same kind of model: close to where it started.
    agreement = (embedder.embed(texts) * base.embed(texts)).sum(axis=1)
    assert np.all(agreement < 0.9999) and np.all(agreement > 0.5)
    # The export was traced on one unpadded sentence; the float model (what runs when the
    # int8 build fails) pads batches, so the traced graph must still honour the mask.
    float_model = OnnxEmbedder(
        model.spec,
        int8=False,
        description=embedder.description,
        files=(model.folder / "model.onnx", model.folder / "tokenizer.json"),
    )
    mixed = ["short", *texts]  # padded to the longest text in one run
    batched = float_model.embed_batch(mixed)
    alone = np.concatenate([float_model.embed_batch([t]) for t in mixed])
    assert not float_model.int8
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    # Served as the collection's embedder: its labelled queries now find their parts.
    ws.reindex("default", model.spec)
    from citewise.retrieval import RetrievalSettings

    ws.store.set_collection_settings(
        ws.collection().id, RetrievalSettings(embedder=model.spec).to_json(), {}
    )
    after = reciprocal_ranks(ws, labels)
    assert np.mean(after) > np.mean(before) + 0.1, (np.mean(before), np.mean(after))
    assert ws.collection().embedder == model.spec
    # Forgetting the tuned settings re-embeds with the workspace's model.
    assert reset(ws, "default")
    assert ws.collection().embedder == base.model_id
    assert reciprocal_ranks(ws, labels) == pytest.approx(before)


def test_tune_embedder_measures_a_held_out_fold_and_saves_only_for_real(catalogue):
    ws, labels = catalogue
    report = tune_embedder(ws, load_labelled_queries(labels), "default", epochs=2, dry_run=True)
    assert report.held_out_queries == 8 and report.training_examples == 32
    assert 0.0 <= report.before <= 1.0 and 0.0 <= report.after <= 1.0
    assert not report.saved and report.embedder == ""
    assert ws.collection().embedder == ws.embedder().model_id  # untouched
    assert not (ws.path / "models" / "default.fold").exists()


def test_missing_pytorch_says_which_extra(monkeypatch):
    import builtins

    from citewise.errors import CitewiseError
    from citewise.finetune import Triple, finetune_embedder

    real_import = builtins.__import__

    def without_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_torch)
    with pytest.raises(CitewiseError, match=r"citewise\[finetune\]"):
        finetune_embedder([Triple("q", "p", None)], Path("unused"))


def test_the_base_model_is_the_packaged_one_offline(monkeypatch):
    from citewise.finetune import base_model

    monkeypatch.delenv("CITEWISE_FINETUNE_BASE", raising=False)
    assert Path(base_model(), "config.json").is_file()
    monkeypatch.setenv("CITEWISE_FINETUNE_BASE", "/elsewhere")
    assert base_model() == "/elsewhere"
