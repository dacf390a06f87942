"""Overload is queueing, not failure: the local model serves one request at a time, its
callers take turns round-robin by key, a wait for a turn is bounded by its own timeout
(``busy``, 503), and neither the wait nor a refusal counts against the model's
first-token timeout or its circuit breaker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from citewise import ProviderError, Workspace
from citewise.keys import create_key
from citewise.providers.base import Message, ModelRequest, TextDelta
from citewise.providers.router import breaker_for
from citewise.providers.turns import Abandoned, FairTurns, QueueFull, reader_gone_when
from citewise.server import create_app
from conftest import LiveServer

LOCAL = "local:smollm2-135m"


def wait_until(condition, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_callers_take_turns_round_robin() -> None:
    turns = FairTurns()
    order: list[str] = []
    hold = threading.Event()

    def take(caller: str, name: str) -> None:
        with turns.turn(caller):
            order.append(name)
            if name == "holder":
                hold.wait(30)

    threads = []

    def start(caller: str, name: str) -> None:
        queued = turns.waiting()
        thread = threading.Thread(target=take, args=(caller, name))
        thread.start()
        threads.append(thread)
        if name != "holder":  # each waiter is in line before the next one arrives
            wait_until(lambda: turns.waiting() == queued + 1)

    start("burst", "holder")
    wait_until(turns.busy)
    for n in range(5):
        start("burst", f"burst-{n}")
    start("quiet", "quiet")
    hold.set()
    for thread in threads:
        thread.join(30)
    # The quiet caller's one request goes before the burst's second, not after its fifth.
    assert order == ["holder", "burst-0", "quiet", "burst-1", "burst-2", "burst-3", "burst-4"]
    assert not turns.busy() and turns.waiting() == 0


def local_workspace(path: Path, queue_timeout: float) -> Workspace:
    ws = Workspace.open(path)
    with (path / "citewise.toml").open("a", encoding="utf-8") as config:
        config.write(f'\n[targets."{LOCAL}"]\nqueue_timeout = {queue_timeout}\n')
    ws.close()
    return Workspace.open(path)


@contextmanager
def model_taken(router) -> Iterator[None]:
    """Another caller holds the local model's turn until the block ends."""
    turns = router.primary._turns
    release, taken = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.turn("someone-else"):
            taken.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(30)
    try:
        yield
    finally:
        release.set()
        holder.join(30)


def ask(router, caller: str, max_tokens: int = 8) -> list:
    request = ModelRequest.of([Message("user", "Say hello.")], max_tokens=max_tokens, caller=caller)
    return list(router.generate(request))


def test_a_request_that_waits_too_long_is_busy_and_never_opens_the_breaker(
    tmp_path: Path,
) -> None:
    ws = local_workspace(tmp_path / "ws", queue_timeout=0.3)
    router = ws.chat_model()
    breaker = breaker_for(router.chain[0], router.policy)
    assert breaker.state == "closed"
    with model_taken(router):
        # More refusals than the breaker's failure threshold (5): a timeout would open it.
        for _ in range(breaker.failures + 2):
            with pytest.raises(ProviderError) as refused:
                ask(router, "burst")
            assert refused.value.kind == "busy"
            assert [a.status for a in refused.value.attempts] == ["busy"]
            assert refused.value.attempts[0].usage.completion_tokens == 0
        assert breaker.state == "closed"
        # Refused requests leave the line: none of them runs once the model is free.
        wait_until(lambda: router.primary._turns.waiting() == 0, 5)
    assert not router.primary._turns.busy()
    events = ask(router, "burst")
    assert any(isinstance(e, TextDelta) and e.text for e in events)
    ws.close()


def test_queue_time_is_not_first_token_time(tmp_path: Path) -> None:
    # The wait in line is longer than the first-token timeout: it must not count against it.
    ws = local_workspace(tmp_path / "ws", queue_timeout=60)
    with (ws.path / "citewise.toml").open("a", encoding="utf-8") as config:
        config.write("first_token_timeout = 5\nfirst_token_per_1k_prompt = 0\n")
    ws.close()
    ws = Workspace.open(tmp_path / "ws")
    router = ws.chat_model()
    assert router.chain[0].first_token_timeout == 5
    ask(router, "warm-up")  # the model's first call reads its weights
    with ThreadPoolExecutor(1) as pool:
        with model_taken(router):
            waiting = pool.submit(ask, router, "patient")
            wait_until(lambda: router.primary._turns.waiting() == 1)
            time.sleep(6.0)  # longer than the first-token timeout
            assert not waiting.done()
        events = waiting.result(timeout=120)
    finished = events[-1]
    assert finished.queue_s >= 6.0  # the wait is reported as queueing ...
    assert finished.attempts[0].queue_s == finished.queue_s
    assert [a.status for a in finished.attempts] == ["ok"]  # ... not as a provider timeout
    assert finished.first_token_s < 5
    ws.close()


def test_two_keys_under_a_burst_the_quiet_key_is_served_next(ingested) -> None:
    ws, _ = ingested
    burst, _ = create_key(ws.store, "burst", ["*"], ["ask"])
    quiet, _ = create_key(ws.store, "quiet", ["*"], ["ask"])
    admin, _ = create_key(ws.store, "admin", ["*"], ["admin"])
    body = {
        "model": "citewise",
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "How are the API keys rotated?"}],
    }
    with LiveServer(create_app(ws)) as live:
        router = ws.chat_model()

        def chat(key: str) -> tuple[int, float, dict]:
            response = httpx.post(
                live.url + "/v1/chat/completions",
                json=body,
                timeout=300,
                headers={"Authorization": f"Bearer {key}"},
            )
            return response.status_code, time.monotonic(), dict(response.headers)

        with ThreadPoolExecutor(8) as pool, model_taken(router):
            burst_calls = []
            for _ in range(6):
                queued = router.primary._turns.waiting()
                burst_calls.append(pool.submit(chat, burst))
                wait_until(lambda q=queued: router.primary._turns.waiting() == q + 1, 120)
            quiet_call = pool.submit(chat, quiet)
            wait_until(lambda: router.primary._turns.waiting() == 7, 120)
        results = [call.result(timeout=600) for call in burst_calls]
        quiet_status, quiet_done, quiet_headers = quiet_call.result(timeout=600)
        metrics = httpx.get(
            live.url + "/metrics", headers={"Authorization": f"Bearer {admin}"}
        ).text
    assert quiet_status == 200 and all(status == 200 for status, _, _ in results)
    # The quiet key went second in line, not seventh: at most one burst answer before it.
    assert sum(done < quiet_done for _, done, _ in results) <= 1
    assert int(quiet_headers["x-citewise-queue-ms"]) > 0
    assert 'status="circuit_open"' not in metrics and 'status="timeout"' not in metrics
    assert "citewise_model_queue_seconds_count" in metrics


def test_a_caller_that_leaves_while_queued_leaves_the_line_at_once(tmp_path: Path) -> None:
    ws = local_workspace(tmp_path / "ws", queue_timeout=60)
    router = ws.chat_model()
    left = threading.Event()
    request = ModelRequest.of(
        [Message("user", "Say hello.")], max_tokens=8, caller="gone", cancelled=left
    )
    with ThreadPoolExecutor(1) as pool, model_taken(router):
        waiting = pool.submit(lambda: list(router.generate(request)))
        wait_until(lambda: router.primary._turns.waiting() == 1)
        hung_up = time.monotonic()
        left.set()
        with pytest.raises(ProviderError) as refused:
            waiting.result(timeout=10)
        # Out of the line within the poll interval, long before its turn would come.
        assert time.monotonic() - hung_up < 5
        assert refused.value.kind == "cancelled"
        assert [a.status for a in refused.value.attempts] == ["cancelled"]
        wait_until(lambda: router.primary._turns.waiting() == 0, 5)
    assert breaker_for(router.chain[0], router.policy).state == "closed"
    ws.close()


def test_a_full_line_refuses_at_once() -> None:
    turns = FairTurns(max_waiting=1)
    release = threading.Event()
    ran: list[str] = []

    def take(caller: str) -> None:
        with turns.turn(caller):
            ran.append(caller)
            release.wait(30)

    threads = [threading.Thread(target=take, args=(c,)) for c in ("a", "b")]
    threads[0].start()
    wait_until(turns.busy)
    threads[1].start()
    wait_until(lambda: turns.waiting() == 1)
    started = time.monotonic()
    with pytest.raises(QueueFull), turns.turn("c"):
        ran.append("c")
    assert time.monotonic() - started < 1  # refused at once, not after a wait
    release.set()
    for thread in threads:
        thread.join(30)
    assert ran == ["a", "b"] and not turns.busy() and turns.waiting() == 0


def test_a_wait_interrupted_by_its_reader_gives_the_turn_on() -> None:
    turns = FairTurns()
    gone = threading.Event()
    order: list[str] = []
    release = threading.Event()

    def hold() -> None:
        with turns.turn("a"):
            release.wait(30)

    def abandoned() -> None:
        with reader_gone_when(gone), pytest.raises(Abandoned), turns.turn("b"):
            order.append("b ran")

    def patient() -> None:
        with turns.turn("c"):
            order.append("c ran")

    threads = [threading.Thread(target=f) for f in (hold, abandoned, patient)]
    threads[0].start()
    wait_until(turns.busy)
    threads[1].start()
    wait_until(lambda: turns.waiting() == 1)
    threads[2].start()
    wait_until(lambda: turns.waiting() == 2)
    gone.set()
    wait_until(lambda: turns.waiting() == 1)
    release.set()
    for thread in threads:
        thread.join(30)
    assert order == ["c ran"] and not turns.busy()
