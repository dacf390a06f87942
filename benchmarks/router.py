"""What the reasoning layer adds to a model call: citewise's router (with the usage ledger
and a budget check) against the official openai SDK calling the same server directly.

    python benchmarks/router.py [--calls 300] [--json out.json]

Both sides stream the same request from the OpenAI stand-in of the tests
(``tests/standins.py``, on loopback, 12 chunks per answer), interleaved call by call in
one run, so the difference is the router's own work: the budget hold and the ledger row
(two SQLite transactions), the watchdog thread that enforces the timeouts, and the
event objects. Reported: time to first token and to the end, p50/p95/p99, and the
router's added milliseconds at the median.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import openai

from _stats import latency_ms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from citewise import Workspace
from citewise.ledger import BudgetRule
from citewise.providers.base import Message, ModelRequest, TextDelta
from standins import stand_in

MESSAGES = [{"role": "user", "content": "How are the API keys rotated?"}]


def direct(client: openai.OpenAI) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    stream = client.chat.completions.create(
        model="model-a",
        messages=MESSAGES,
        max_tokens=64,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


def routed(ws: Workspace, request: ModelRequest) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    for event in ws.chat_model().generate(request):
        if first is None and isinstance(event, TextDelta):
            first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


def run(calls: int) -> dict:
    os.environ["STANDIN_KEY"] = "sk-standin"
    with stand_in("openai") as (url, _), tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        (ws.path / "citewise.toml").write_text(
            f'[models.bench]\nchain = ["openai:model-a"]\n[targets."openai:model-a"]\n'
            f'base_url = "{url}"\napi_key_env = "STANDIN_KEY"\ninput_price = 0.15\n'
            f"output_price = 0.6\n"
        )
        ws.close()
        ws = Workspace.open(Path(tmp) / "ws", model="bench")
        ws.ledger.set_budget(BudgetRule("key", "bench", "usd", "day", 1000.0))
        client = openai.OpenAI(base_url=url, api_key="sk-standin", max_retries=0)
        request = ModelRequest.of(
            [Message("user", MESSAGES[0]["content"])], max_tokens=64, caller="bench"
        )
        for _ in range(20):  # warm both paths (connections, imports)
            direct(client)
            routed(ws, request)
        sides: dict[str, list[tuple[float, float]]] = {
            "openai SDK direct": [],
            "citewise router": [],
        }
        for _ in range(calls):  # interleaved: both see the same machine state
            sides["openai SDK direct"].append(direct(client))
            sides["citewise router"].append(routed(ws, request))
        rows = len(ws.ledger.rows())
        ws.close()
    results = {
        name: {
            "first_token_ms": latency_ms([f * 1000 for f, _ in values], 2),
            "total_ms": latency_ms([t * 1000 for _, t in values], 2),
        }
        for name, values in sides.items()
    }
    routed_, direct_ = results["citewise router"], results["openai SDK direct"]
    added = {
        f"{measure}_{q}": round(routed_[measure][q] - direct_[measure][q], 2)
        for measure in ("first_token_ms", "total_ms")
        for q in ("p50", "p99")
    }
    return {"calls": calls, "ledger_rows": rows, "results": results, "router_adds": added}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = run(args.calls)
    print(f"{'':20} {'first token p50/p99 ms':>24} {'total p50/p99 ms':>20}")
    for name, r in report["results"].items():
        print(
            f"{name:20} {r['first_token_ms']['p50']:>11} / {r['first_token_ms']['p99']:<10} "
            f"{r['total_ms']['p50']:>8} / {r['total_ms']['p99']}"
        )
    adds = report["router_adds"]
    print(
        f"router adds: {adds['first_token_ms_p50']} ms (p50) / {adds['first_token_ms_p99']} ms "
        f"(p99) to the first token, {adds['total_ms_p50']} / {adds['total_ms_p99']} ms in all "
        f"({report['ledger_rows']} ledger rows written)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
