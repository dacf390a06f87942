"""SQLite and PostgreSQL side by side: retrieval quality, write throughput, search latency.

    python benchmarks/storage.py [--workspaces DIR] [--sizes 100000] [--json FILE]

One run on one machine, PostgreSQL 16 with pgvector 0.6 from ``pgserver`` (a Unix socket,
default settings — 128 MB shared buffers — but for ``maintenance_work_mem`` raised to 3 GB,
as pgvector advises for HNSW builds):

* **quality**: SciFact (train) and CISI (test) ingested once into SQLite, copied to
  PostgreSQL by ``Workspace.migrate`` (the same chunks and vectors), every mode's nDCG@10
  on each backend through ``Workspace.search``, and its p50 / p95 latency;
* **writes**: the migration's own rate (documents and chunks a second into PostgreSQL,
  no parsing or embedding) beside copying the same documents into a new SQLite store;
* **scale**: collections grown to each ``--sizes`` with perturbed copies of SciFact's
  chunks written through the storage API (``replace_document``: one transaction per
  document, vectors and keyword entries included), hybrid search p50 / p95 unfiltered
  and with a metadata filter that keeps 10% of the collection.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _stats import latency_ms
from citewise import Workspace
from citewise.cpu import cpu_summary
from citewise.documents import Chunk, Document
from citewise.embedders.base import normalize
from citewise.evaluation import evaluate_run, load_beir
from citewise.storage.migrate import copy_store
from citewise.workspace import init_workspace
from retrieval_quality import dataset_parser, mode_run

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {"scifact": "train", "cisi": "test"}


def main() -> None:
    parser = dataset_parser("SQLite workspaces are <DIR>/citewise-bench-<dataset> (reused).")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument(
        "--parts",
        nargs="*",
        default=["quality", "replicas", "scale"],
        help="Which parts to run (a partial run merges into --json).",
    )
    parser.add_argument(
        "--backends",
        nargs="*",
        default=["sqlite", "postgresql"],
        help="Which backends the scale part grows (merged into --json).",
    )
    args = parser.parse_args()
    results: dict = {"quality": {}, "writes": {}, "scale": {}}
    if args.json and args.json.exists():
        results |= json.loads(args.json.read_text())
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp)) as admin:
        results["postgres"] = server_version(admin)
        seed = args.workspaces / "citewise-bench-scifact"
        for name, split in DATASETS.items():
            sqlite_ws = args.workspaces / f"citewise-bench-{name}"
            data = load_beir(args.datasets / name, split)
            with Workspace.open(sqlite_ws) as ws:
                ws.add_items(data.corpus_items(), name)
                ws.store.set_collection_settings(ws.collection(name).id, None, {})  # defaults
            if "quality" not in args.parts:
                continue
            pg_ws = Path(tmp) / f"pg-{name}"
            init_workspace(pg_ws, store=new_database(admin, name))
            results["writes"][name] = copy_rates(sqlite_ws, pg_ws, Path(tmp) / f"copy-{name}")
            results["quality"][name] = {
                backend: quality(directory, name, data)
                for backend, directory in (("sqlite", sqlite_ws), ("postgresql", pg_ws))
            }
            print(json.dumps({name: results["quality"][name]}, indent=1))
        if "replicas" in args.parts:
            results["replicas"] = replica_throughput(seed, admin, Path(tmp))
            print(json.dumps({"replicas": results["replicas"]}, indent=1))
        if "scale" in args.parts:
            for size in args.sizes:
                results["scale"][str(size)] = results["scale"].get(str(size), {}) | scale(
                    seed, admin, Path(tmp), size, args.backends
                )
                print(json.dumps({size: results["scale"][str(size)]}, indent=1))
                if args.json:  # a long run keeps what it measured so far
                    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


# -- a PostgreSQL server for the run ------------------------------------------------------


class postgres_server:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.root / "runtime"))
        (self.root / "runtime").mkdir(exist_ok=True, mode=0o700)
        import pgserver

        self.server = pgserver.get_server(self.root / "pg", cleanup_mode="stop")
        uri = str(self.server.get_uri())
        import psycopg

        # pgvector's advice for HNSW builds: a graph that outgrows maintenance_work_mem
        # (64 MB by default; a million 384-d vectors take about 2 GB) is built on disk,
        # many times slower. Everything else keeps PostgreSQL's defaults.
        with psycopg.connect(uri, autocommit=True) as db:
            db.execute("ALTER SYSTEM SET maintenance_work_mem = '3GB'")
            db.execute("SELECT pg_reload_conf()")
        return uri

    def __exit__(self, *exc: object) -> None:
        self.server.cleanup()


def new_database(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS bench_{name}")
        db.execute(f"CREATE DATABASE bench_{name}")
    return admin.replace("/postgres?", f"/bench_{name}?")


def server_version(admin: str) -> str:
    import psycopg

    with psycopg.connect(admin) as db:
        return str(db.execute("SHOW server_version").fetchone()[0])


# -- quality and latency ------------------------------------------------------------------


def quality(directory: Path, name: str, data) -> dict:
    rows = {}
    with Workspace.open(directory) as ws:
        for mode in ("bm25", "dense", "hybrid"):
            run, times = mode_run(ws, name, data, mode)
            ndcg = evaluate_run(data.qrels, run)["mean"]["nDCG@10"]
            rows[mode] = {"ndcg@10": round(ndcg, 4), **latency_ms([t * 1000 for t in times])}
    return rows


def copy_rates(sqlite_ws: Path, pg_ws: Path, copy_ws: Path) -> dict:
    """Documents and chunks a second written by a migration into each backend."""
    rates = {}
    with Workspace.open(sqlite_ws) as source:
        for backend, directory in (("postgresql", pg_ws), ("sqlite", copy_ws)):
            if backend == "sqlite":
                init_workspace(directory)
            with Workspace.open(directory) as target_ws:
                started = time.perf_counter()
                report = copy_store(source.store, target_ws.store)
                seconds = time.perf_counter() - started
            rates[backend] = {
                "documents_per_s": round(report.documents / seconds, 1),
                "chunks_per_s": round(report.chunks / seconds, 1),
                "documents": report.documents,
            }
    return rates


# -- scale --------------------------------------------------------------------------------


def scale(seed_ws: Path, admin: str, tmp: Path, size: int, backends: list[str]) -> dict:
    """Both backends grown to ``size`` chunks with the same copies; hybrid p50 / p95."""
    rng = np.random.default_rng(0)
    with Workspace.open(seed_ws) as seed:
        originals = [
            d for d in seed.store.export_documents(seed.collection("scifact").id) if d.chunks
        ]
        queries = [q for _, q in list(load_beir(SHARED / "scifact", "train").queries.items())[:200]]
    out = {}
    for backend in backends:
        directory = tmp / f"scale-{backend}-{size}"
        store = new_database(admin, f"scale{size}") if backend == "postgresql" else ""
        init_workspace(directory, store=store)
        with Workspace.open(directory) as ws:
            collection = ws.collection("scale")
            started = time.perf_counter()
            # A transaction a document up to 100k (as ingest writes); a million is written
            # 1,000 documents a transaction, or PostgreSQL's commits alone take 40 minutes.
            batch = 1 if size <= 100_000 else 1000
            chunks = grow(ws, collection.id, originals, size, rng, batch)
            write_s = time.perf_counter() - started
            ws.refresh_indexes("scale")
            # Backends grown in separate runs are compared only when this matches.
            out[backend] = {
                "cpu": cpu_summary(),
                "date": time.strftime("%Y-%m-%d"),
                "chunks": chunks,
                "write_chunks_per_s": round(chunks / write_s, 1),
                "documents_per_transaction": batch,
                "hybrid": measure(ws, queries, None),
                "hybrid, 10% filter": measure(ws, queries, {"shard": 3}),
            }
        print(backend, size, out[backend], file=sys.stderr)
    return out


def grow(ws: Workspace, collection_id: int, originals: list, size: int, rng, batch: int) -> int:
    """``size`` one-chunk copies through ``replace_document``, ``batch`` to a transaction."""
    made, n = 0, 0
    while made < size:
        with ws.store.transaction():
            for _ in range(min(batch, size - made)):
                stored = originals[n % len(originals)]
                index = n % len(stored.chunks)
                chunk = stored.chunks[index]
                n += 1
                words = [
                    w for w in chunk.text.split() if rng.random() > 0.15
                ] or chunk.text.split()[:1]
                body = " ".join(words)
                noise = rng.normal(0, 0.02, (1, stored.vectors.shape[1])).astype(np.float32)
                vector = normalize(stored.vectors[index][None, :] + noise)
                document = Document(
                    f"copy:{n}", stored.document.title, body, [], f"h{n}", {"shard": n % 10}
                )
                ws.store.replace_document(
                    collection_id,
                    document,
                    [Chunk(0, 0, len(body), body, chunk.n_tokens, chunk.heading_path)],
                    vector,
                )
                made += 1
    return made


def measure(ws: Workspace, queries: list[str], where: dict | None) -> dict:
    for q in queries[:5]:  # warm caches and indexes
        ws.search(q, 10, ["scale"], "hybrid", where)
    times = []
    for q in queries:
        started = time.perf_counter()
        ws.search(q, 10, ["scale"], "hybrid", where)
        times.append((time.perf_counter() - started) * 1000)
    return latency_ms(times) | {"mean": round(statistics.mean(times), 1)}


# -- replicas -----------------------------------------------------------------------------


def replica_throughput(seed_ws: Path, admin: str, tmp: Path, seconds: float = 20.0) -> dict:
    """Searches a second served by 1, 2 and 3 replicas sharing one store (SciFact, copied
    into SQLite and into PostgreSQL) and one Redis, from 8 clients spread over them
    (hybrid, k = 5). On one 2-core machine replicas share the cores: this measures what
    sharing costs, not what more machines would add."""
    import shutil
    import subprocess

    from citewise.config import set_config_value

    redis_port = _free_port()
    redis = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    queries = [q for _, q in list(load_beir(SHARED / "scifact", "train").queries.items())[:300]]
    results = {}
    try:
        for backend in ("sqlite", "postgresql"):
            directory = tmp / f"replicas-{backend}"
            store = new_database(admin, "replicas") if backend == "postgresql" else ""
            init_workspace(directory, store=store)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            set_config_value(directory / "citewise.toml", "redis_url", redis_url)
            with Workspace.open(seed_ws) as source, Workspace.open(directory) as target:
                copy_store(source.store, target.store)
            results[backend] = _served(directory, queries, seconds)
    finally:
        redis.terminate()
    return results


def _served(directory: Path, queries: list[str], seconds: float) -> dict:
    import signal
    import subprocess

    citewise = str(Path(sys.executable).with_name("citewise"))
    results, replicas = {}, []
    try:
        for count in (1, 2, 3):
            while len(replicas) < count:
                port = _free_port()
                process = subprocess.Popen(
                    [
                        citewise,
                        "-w",
                        str(directory),
                        "serve",
                        "--port",
                        str(port),
                        "--no-auth",
                        "--log-level",
                        "warning",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                replicas.append((f"http://127.0.0.1:{port}", process))
                _wait_ready(replicas[-1][0])
            latencies = _fleet([u for u, _ in replicas], queries, seconds)
            results[count] = {
                "requests_per_s": round(len(latencies) / seconds, 1),
                **latency_ms(latencies),
            }
            print(count, results[count], file=sys.stderr)
    finally:
        for _, process in replicas:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    return results


def _fleet(urls: list[str], queries: list[str], seconds: float, clients: int = 8) -> list[float]:
    """Latencies (ms) of searches sent by ``clients`` threads, round robin over ``urls``."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    deadline = time.monotonic() + seconds

    def client(n: int) -> list[float]:
        times = []
        with httpx.Client(timeout=60) as http:
            i = n
            while time.monotonic() < deadline:
                started = time.perf_counter()
                body = {"query": queries[i % len(queries)], "k": 5}
                http.post(urls[i % len(urls)] + "/v1/search", json=body).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
                i += clients
        return times

    with ThreadPoolExecutor(clients) as pool:
        return [t for part in pool.map(client, range(clients)) for t in part]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} never became ready")


if __name__ == "__main__":
    main()
