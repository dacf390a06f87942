"""Search latency of this checkout against another (a baseline commit), side by side.

    git worktree add /tmp/citewise-baseline <commit>
    python benchmarks/search_ab.py --baseline /tmp/citewise-baseline [--chunks 100000]

One workspace grown to ``--chunks`` (SciFact copies, as benchmarks/scale.py makes them)
is searched by both versions in alternating rounds, each in a fresh process importing
its own ``src/``: hybrid and bm25 p50/p95 over SciFact's short claims and CISI's long
queries. The ratio new / baseline is the figure; the machine's drift cancels out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from scale import DATASET, chunk_count, grow, seed_from

HERE = Path(__file__).resolve().parent
CISI = DATASET.parent / "cisi"
ROUNDS = 3

CHILD = """
import json, sys, time
from pathlib import Path
from citewise import Workspace
from citewise.evaluation import load_beir
workspace, mode = Path(sys.argv[1]), sys.argv[2]
queries = json.loads(sys.argv[3])
with Workspace.open(workspace) as ws:
    ws.search(queries[0], 10, ["scale"], mode)  # loads the indexes
    times = []
    for query in queries:
        started = time.perf_counter()
        ws.search(query, 10, ["scale"], mode)
        times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the baseline")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--seed", type=Path, help="a workspace with SciFact as 'scifact'")
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/citewise-search-ab"))
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prepare(args)
    sets = {
        "short (SciFact)": claims(DATASET / "queries.jsonl", args.queries),
        "long (CISI)": claims(CISI / "queries.jsonl", args.queries),
    }
    versions = {"baseline": args.baseline / "src", "this": HERE.parent / "src"}
    samples: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for mode in ("hybrid", "bm25"):
            for label, queries in sets.items():
                for version, src in versions.items():
                    key = f"{mode} {label} {version}"
                    samples.setdefault(key, []).extend(run(src, args.workspace, mode, queries))
    results = summarise(samples, sets)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def prepare(args: argparse.Namespace) -> None:
    from citewise import Workspace

    if not args.workspace.exists() and args.seed:
        seed_from(args.seed, args.workspace)
    with Workspace.open(args.workspace) as ws:
        if ws.store.collection("scale") is None:
            from citewise.evaluation import load_beir

            ws.add_items(load_beir(DATASET).corpus_items(), "scale")
        collection_id = ws.collection("scale").id
        grow(ws, collection_id, args.chunks, np.random.default_rng(0))
        ws.refresh_indexes("scale")
        print(f"{chunk_count(ws, collection_id)} chunks", flush=True)


def claims(path: Path, limit: int) -> list[str]:
    lines = [json.loads(line)["text"] for line in path.open() if line.strip()]
    return lines[:limit]


def run(src: Path, workspace: Path, mode: str, queries: list[str]) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(workspace), mode, json.dumps(queries)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(samples: dict[str, list[float]], sets: dict[str, list[str]]) -> dict:
    results = {}
    for mode in ("hybrid", "bm25"):
        for label in sets:
            row = {}
            for version in ("baseline", "this"):
                times = sorted(samples[f"{mode} {label} {version}"])
                row[version] = {
                    "p50_ms": round(statistics.median(times) * 1000, 1),
                    "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 1),
                }
            row["p50 ratio"] = round(row["this"]["p50_ms"] / row["baseline"]["p50_ms"], 2)
            results[f"{mode}, {label}"] = row
            print(
                f"{mode:6s} {label:16s} baseline p50 {row['baseline']['p50_ms']} ms "
                f"p95 {row['baseline']['p95_ms']} ms · this p50 {row['this']['p50_ms']} ms "
                f"p95 {row['this']['p95_ms']} ms · ratio {row['p50 ratio']}",
                flush=True,
            )
    return results


if __name__ == "__main__":
    main()
