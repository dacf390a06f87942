"""Two API keys share the local model: one sends a burst, the other a request now and then.
citewise's turns (round-robin per key, ``providers/turns.py``) against a plain lock (what
the local model used before), side by side in one run on the same loaded model.

    python benchmarks/overload.py [--burst 12] [--quiet 4] [--json out.json]

Each round: the burst key submits ``--burst`` chats at once; shortly after, the quiet key
sends ``--quiet`` chats one after another. Reported per arm: the quiet key's latency
(p50/p95/max) and how many of the burst's answers finished before each quiet answer, plus
the burst's total time (fairness must not cost throughput). Both arms run the same requests
(temperature 0, fixed max_tokens) on the same model object, the arms alternating by round.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from _stats import latency_ms, measured_on
from citewise import Workspace
from citewise.providers.base import Message, ModelRequest
from citewise.providers.turns import FairTurns

QUESTION = "In two sentences, why do teams rotate API keys?"


class LockTurns:
    """The baseline: one lock, whichever waiting thread the OS wakes goes next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def turn(self, caller: str) -> Iterator[None]:
        with self._lock:
            yield


def chat(router, caller: str, max_tokens: int) -> float:
    request = ModelRequest.of([Message("user", QUESTION)], max_tokens=max_tokens, caller=caller)
    for _ in router.generate(request):
        pass
    return time.monotonic()


def one_round(router, burst: int, quiet: int, max_tokens: int) -> dict:
    started = time.monotonic()
    with ThreadPoolExecutor(burst + 1) as pool:
        bursts = [pool.submit(chat, router, "burst", max_tokens) for _ in range(burst)]
        time.sleep(0.2)  # the burst is queued first
        quiet_latency, overtaken = [], []
        for _ in range(quiet):
            asked = time.monotonic()
            done = chat(router, "quiet", max_tokens)
            quiet_latency.append(done - asked)
            overtaken.append(sum(f.done() and f.result() < done for f in bursts))
        finished = [f.result() for f in bursts]
    return {
        "quiet_s": quiet_latency,
        "burst_total_s": max(finished) - started,
        "burst_done_before_quiet": overtaken,
    }


def run(burst: int, quiet: int, rounds: int, max_tokens: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        router = ws.chat_model()
        model = router.primary
        chat(router, "warm-up", max_tokens)
        arms: dict[str, dict[str, list]] = {
            name: {"quiet_s": [], "burst_total_s": [], "burst_done_before_quiet": []}
            for name in ("fair turns", "plain lock")
        }
        for n in range(rounds):
            for name in (
                ("fair turns", "plain lock") if n % 2 == 0 else ("plain lock", "fair turns")
            ):
                model._turns = FairTurns() if name == "fair turns" else LockTurns()
                result = one_round(router, burst, quiet, max_tokens)
                for field, values in result.items():
                    arms[name][field] += values if isinstance(values, list) else [values]
        ws.close()
    summary = {}
    for name, data in arms.items():
        quiet_ms = [s * 1000 for s in data["quiet_s"]]
        summary[name] = {
            "quiet_latency_ms": latency_ms(quiet_ms) | {"max": round(max(quiet_ms), 1)},
            "burst_answers_before_each_quiet_answer": data["burst_done_before_quiet"],
            "burst_total_s": [round(s, 2) for s in data["burst_total_s"]],
        }
    fair, lock = summary["fair turns"], summary["plain lock"]
    return {
        "measured_on": measured_on(),
        "command": f"python benchmarks/overload.py --burst {burst} --quiet {quiet} "
        f"--rounds {rounds} --max-tokens {max_tokens}",
        "arms": summary,
        "quiet_p95_ratio_lock_over_fair": round(
            lock["quiet_latency_ms"]["p95"] / fair["quiet_latency_ms"]["p95"], 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=12)
    parser.add_argument("--quiet", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.burst, args.quiet, args.rounds, args.max_tokens)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
