"""`citewise serve` under load, against the same work done in-process.

    python benchmarks/server.py [--json out.json] [--load-seconds 60]

Starts `citewise serve` as a separate process on loopback (its own interpreter, as
in production) over the test corpus, and drives it from one asyncio client:

1. overhead: latency of POST /v1/search and of a short chat completion minus the
   same Workspace.search / Workspace.ask in this process, at 1, 8 and 32 concurrent
   clients (p50 and p99);
2. embeddings: POST /v1/embeddings requests per second at 1, 8 and 32 clients,
   with the micro-batching queue and without (a server started with it off);
3. load: 32 clients for --load-seconds mixing search, embeddings and chat, one of
   the keys rate-limited: every response must be 200 or an intended 429.

Client and server share the machine's 2 cores, so the figures include the client's
own cost; they are for comparing the rows, not for a capacity plan.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _stats import latency_ms
from citewise import Workspace
from citewise.keys import create_key
from conftest import CITEWISE, write_corpus

QUERIES = [
    "rotate the API keys",
    "emergency assembly point",
    "refunds card",
    "backups kept",
    "visitor parking",
    "meal allowance abroad",
    "office opening hours",
    "fire drills",
]
CHAT = "How do I rotate the API keys?"
CHAT_TOKENS = 16
CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, workspace: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                CITEWISE,
                "-w",
                str(workspace),
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server never became ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


async def drive(clients: int, requests: int, send) -> tuple[list[float], dict[int, int], float]:
    """``requests`` calls of ``send(client, i)`` spread over ``clients`` concurrent workers."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            started = time.perf_counter()
            status = await send(client, i)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed


def in_process(clients: int, requests: int, call) -> list[float]:
    latencies: list[float] = []

    def timed(i: int) -> None:
        started = time.perf_counter()
        call(i)
        latencies.append((time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(timed, range(requests)))
    return latencies


def overhead(server: Server, key: str, ws: Workspace) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}"}
    rows = []

    async def search(client: httpx.AsyncClient, i: int) -> int:
        body = {"query": QUERIES[i % len(QUERIES)], "k": 10}
        return (
            await client.post(server.url + "/v1/search", json=body, headers=headers)
        ).status_code

    async def chat(client: httpx.AsyncClient, i: int) -> int:
        body = {
            "model": "citewise",
            "max_tokens": CHAT_TOKENS,
            "messages": [{"role": "user", "content": CHAT}],
        }
        return (
            await client.post(server.url + "/v1/chat/completions", json=body, headers=headers)
        ).status_code

    settings = dataclasses.replace(ws.settings, answer_tokens=CHAT_TOKENS)

    def ask_in_process(i: int) -> None:
        stream = ws.ask_stream(CHAT, settings=settings)
        for _ in stream:
            pass

    for clients in CONCURRENCY:
        n = max(200, clients * 20)
        asyncio.run(drive(clients, 20, search))  # warm up connections
        served, statuses, _ = asyncio.run(drive(clients, n, search))
        local = in_process(clients, n, lambda i: ws.search(QUERIES[i % len(QUERIES)], 10))
        rows.append(_overhead_row("search", clients, served, local, statuses))
    for clients in (1, 8):
        n = 16 if clients == 1 else 32
        served, statuses, _ = asyncio.run(drive(clients, n, chat))
        local = in_process(clients, n, ask_in_process)
        rows.append(_overhead_row(f"chat ({CHAT_TOKENS} tokens)", clients, served, local, statuses))
    return rows


def _overhead_row(
    name: str, clients: int, served: list[float], local: list[float], statuses: dict[int, int]
) -> dict:
    s, l_ = latency_ms(served, 2), latency_ms(local, 2)
    return {
        "endpoint": name,
        "clients": clients,
        "server": s,
        "in_process": l_,
        "added_p50_ms": round(s["p50"] - l_["p50"], 2),
        "added_p99_ms": round(s["p99"] - l_["p99"], 2),
        "statuses": statuses,
    }


def embeddings(server: Server, key: str) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}"}
    rows = []

    async def embed(client: httpx.AsyncClient, i: int) -> int:
        body = {"model": "all-MiniLM-L6-v2", "input": QUERIES[i % len(QUERIES)] + f" {i}"}
        return (
            await client.post(server.url + "/v1/embeddings", json=body, headers=headers)
        ).status_code

    for clients in CONCURRENCY:
        asyncio.run(drive(clients, 20, embed))
        latencies, statuses, elapsed = asyncio.run(drive(clients, 400, embed))
        rows.append(
            {
                "clients": clients,
                "requests_per_s": round(400 / elapsed, 1),
                "latency_ms": latency_ms(latencies, 2),
                "statuses": statuses,
            }
        )
    return rows


def load(server: Server, keys: dict[str, str], seconds: float) -> dict:
    async def mixed(client: httpx.AsyncClient, i: int) -> int:
        key = keys["limited"] if i % 8 == 0 else keys["open"]
        headers = {"Authorization": f"Bearer {key}"}
        kind = i % 16
        if kind == 5:
            body = {
                "model": "citewise",
                "max_tokens": CHAT_TOKENS,
                "messages": [{"role": "user", "content": CHAT}],
            }
            response = await client.post(
                server.url + "/v1/chat/completions", json=body, headers=headers
            )
        elif kind % 2:
            body = {"model": "all-MiniLM-L6-v2", "input": QUERIES[i % len(QUERIES)]}
            response = await client.post(server.url + "/v1/embeddings", json=body, headers=headers)
        else:
            body = {"query": QUERIES[i % len(QUERIES)], "k": 10}
            response = await client.post(server.url + "/v1/search", json=body, headers=headers)
        return response.status_code

    async def run() -> tuple[list[float], dict[int, int], float]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        deadline = time.monotonic() + seconds
        counter = iter(range(10**9))

        async def worker(client: httpx.AsyncClient) -> None:
            while time.monotonic() < deadline:
                i = next(counter)
                started = time.perf_counter()
                status = await mixed(client, i)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            started = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(32)))
            return latencies, statuses, time.perf_counter() - started

    latencies, statuses, elapsed = asyncio.run(run())
    unexpected = sum(n for status, n in statuses.items() if status not in (200, 429))
    return {
        "clients": 32,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": latency_ms(latencies, 1),
        "statuses": statuses,
        "unexpected_errors": unexpected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--load-seconds", type=float, default=60)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="citewise-serve-bench-"))
    try:
        workspace = root / "ws"
        with Workspace.open(workspace) as ws:
            ws.ingest([write_corpus(root / "corpus")])
            keys = {
                "open": create_key(ws.store, "open", ["*"], ["ask"])[0],
                "limited": create_key(ws.store, "limited", ["*"], ["ask"], rpm=60)[0],
            }
        results: dict = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0]}
        server = Server(workspace)
        with Workspace.open(workspace) as ws:
            ws.chat_model()
            ws.search("warm up")
            try:
                results["overhead"] = overhead(server, keys["open"], ws)
                results["embeddings_batched"] = embeddings(server, keys["open"])
                results["load"] = load(server, keys, args.load_seconds)
            finally:
                server.stop()
        unbatched = Server(workspace, "--no-batching")
        try:
            results["embeddings_unbatched"] = embeddings(unbatched, keys["open"])
        finally:
            unbatched.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def markdown(results: dict) -> str:
    lines = [
        "| endpoint | clients | server p50 / p99 ms | in-process p50 / p99 ms | added p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for row in results["overhead"]:
        s, l_ = row["server"], row["in_process"]
        lines.append(
            f"| {row['endpoint']} | {row['clients']} | {s['p50']} / {s['p99']} | "
            f"{l_['p50']} / {l_['p99']} | {row['added_p50_ms']} / {row['added_p99_ms']} |"
        )
    lines += [
        "",
        "| embeddings clients | batched req/s | unbatched req/s | batched p50 ms | unbatched p50 ms |",
        "|---|---|---|---|---|",
    ]
    for on, off in zip(results["embeddings_batched"], results["embeddings_unbatched"], strict=True):
        lines.append(
            f"| {on['clients']} | {on['requests_per_s']} | {off['requests_per_s']} | "
            f"{on['latency_ms']['p50']} | {off['latency_ms']['p50']} |"
        )
    load_ = results["load"]
    lines += [
        "",
        f"Load: {load_['clients']} clients for {load_['seconds']} s, {load_['requests']} "
        f"requests ({load_['requests_per_s']}/s), p50/p95/p99 {load_['latency_ms']['p50']}/"
        f"{load_['latency_ms']['p95']}/{load_['latency_ms']['p99']} ms, statuses "
        f"{load_['statuses']}, unexpected errors {load_['unexpected_errors']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
