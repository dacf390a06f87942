"""One conformance suite for the rate limiter's buckets: in this process, and in a real
``redis-server`` (Debian's Redis 7, started by the fixture on 127.0.0.1) shared by
replicas."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from citewise.server.ratelimit import RateLimiter, RedisRateLimiter


@pytest.fixture(params=["memory", "redis"])
def limiters(request: pytest.FixtureRequest):
    """A factory: each call is another replica's limiter (sharing buckets where the
    backend shares them); a fresh key prefix keeps tests apart."""
    if request.param == "memory":
        shared = RateLimiter()
        yield lambda: shared, False
        return
    url = request.getfixturevalue("redis_url")
    prefix = "test:" + uuid.uuid4().hex
    opened: list[RedisRateLimiter] = []

    def replica() -> RedisRateLimiter:
        opened.append(RedisRateLimiter(url, prefix=prefix))
        return opened[-1]

    yield replica, True
    for limiter in opened:
        limiter.close()


def test_requests_per_minute_with_openai_headers(limiters) -> None:
    replica, _ = limiters
    limiter = replica()
    verdicts = [limiter.check("alice", 3, None) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[0].headers["x-ratelimit-limit-requests"] == "3"
    assert verdicts[0].headers["x-ratelimit-remaining-requests"] == "2"
    refused = verdicts[-1]
    assert refused.kind == "requests" and 0 < refused.retry_after <= 20
    assert limiter.check("bob", 3, None).allowed  # another key has its own bucket


def test_tokens_are_charged_after_the_call(limiters) -> None:
    replica, _ = limiters
    limiter = replica()
    assert limiter.check("carol", None, 100).allowed
    limiter.spend_tokens("carol", 100, 150)  # one call may overdraw...
    refused = limiter.check("carol", None, 100)
    assert not refused.allowed and refused.kind == "tokens"  # ...the next one waits
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_buckets_refill_at_the_per_minute_rate(limiters) -> None:
    replica, _ = limiters
    limiter = replica()
    assert limiter.check("dave", 120, None).allowed  # two per second
    assert limiter.check("dave", 120, None).allowed
    while limiter.check("dave", 120, None).allowed:
        pass  # drain what refilled meanwhile
    time.sleep(0.6)  # a request's worth (0.5 s) refills
    assert limiter.check("dave", 120, None).allowed


def test_replicas_share_one_limit(limiters) -> None:
    """Three replicas, 60 concurrent requests at 10 per minute: 10 pass in all (with
    per-process buckets, each replica would let 10 through)."""
    replica, shared = limiters
    replicas = [replica() for _ in range(3)]

    def ask(n: int) -> bool:
        return replicas[n % 3].check("erin", 10, None).allowed

    with ThreadPoolExecutor(12) as pool:
        allowed = sum(pool.map(ask, range(60)))
    assert allowed == 10 if shared else allowed >= 10


def test_a_server_enforces_redis_limits(redis_url: str, ingested, tmp_path: Path) -> None:
    """Two servers (replicas) on one workspace and one Redis: a key allowed 4 requests a
    minute gets 4 across both."""
    import httpx

    from citewise import Workspace
    from citewise.keys import create_key
    from citewise.server import create_app
    from conftest import LiveServer

    ws, _ = ingested
    key = create_key(ws.store, "shared", ["*"], ["ask"], rpm=4)[0]
    ws.close()
    first = Workspace.open(ws.path, redis_url=redis_url)
    second = Workspace.open(ws.path, redis_url=redis_url)
    with LiveServer(create_app(first)) as a, LiveServer(create_app(second)) as b:
        statuses = [
            httpx.get(
                server.url + "/v1/collections", headers={"Authorization": f"Bearer {key}"}
            ).status_code
            for server in (a, b, a, b, a, b)
        ]
    first.close()
    second.close()
    assert statuses == [200, 200, 200, 200, 429, 429]
