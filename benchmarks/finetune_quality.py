"""Fine-tuning the embedder on SciFact's train labels: a held-out fold, before and after.

    .venv-bench/bin/python benchmarks/finetune_quality.py [--workspace DIR] [--json FILE]

Runs ``citewise tune --finetune-embedder --dry-run``'s measurement: all-MiniLM-L6-v2
fine-tuned (3 epochs, hard negatives, in-batch negatives) on four fifths of the 809 train
queries, then the fifth it never saw searched with the collection's stored BM25 and the
new model's vectors (computed in memory, int8 ONNX like the default), against the current
model on the same queries. Needs the PyTorch environment (``make bench-env``); the
collection is the one ``make bench`` already ingested, left unchanged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from citewise import Workspace
from citewise.evaluation import load_beir
from citewise.tuning import tune_embedder

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/citewise-bench-scifact"))
    parser.add_argument("--collection", default="scifact")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = load_beir(args.dataset, "train")
    ws = Workspace.open(args.workspace)
    ws.add_items(data.corpus_items(), args.collection)
    started = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"{stage}: step {done}/{total} ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip

    report = tune_embedder(ws, (data.queries, data.qrels), args.collection, args.epochs,
                           dry_run=True, progress=progress)  # fmt: skip
    result = report.to_json()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
