"""Per-key request and token limits, with OpenAI's headers.

Each limit is a token bucket that holds a minute's allowance and refills
continuously, so a client may burst up to its per-minute limit and then proceeds
at the steady rate. Tokens are charged after a request, when its usage is known
(so one request may overdraw; the next waits until the bucket is positive again).

The buckets live in this process (``RateLimiter``), or in Redis (``RedisRateLimiter``,
setting ``redis_url``) where every server replica shares them: each check is one Lua
script — refill, test and take in one atomic step, on Redis's clock — so N replicas
enforce the limit once, not N times.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Unavailable

log = logging.getLogger("citewise.ratelimit")


@dataclass
class Bucket:
    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:  # per second
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def seconds_until(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.rate)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    kind: str  # requests | tokens
    retry_after: float
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str, rpm: int | None, tpm: int | None) -> Verdict:
        """Take one request from the key's allowance (unless a limit is reached)."""
        with self._lock:
            now = self.clock()
            requests = self._bucket(key, "requests", rpm, now)
            tokens = self._bucket(key, "tokens", tpm, now)
            if requests is not None and requests.level < 1:
                return Verdict(
                    False, "requests", requests.seconds_until(1), self._headers(requests, tokens)
                )
            if tokens is not None and tokens.level <= 0:
                return Verdict(
                    False, "tokens", tokens.seconds_until(1), self._headers(requests, tokens)
                )
            if requests is not None:
                requests.level -= 1
            return Verdict(True, "requests", 0.0, self._headers(requests, tokens))

    def spend_tokens(self, key: str, tpm: int | None, amount: int) -> None:
        with self._lock:
            bucket = self._bucket(key, "tokens", tpm, self.clock())
            if bucket is not None:
                bucket.level -= amount

    def _bucket(self, key: str, kind: str, limit: int | None, now: float) -> Bucket | None:
        if not limit:
            return None
        bucket = self._buckets.get((key, kind))
        if bucket is None or bucket.capacity != limit:
            bucket = self._buckets[(key, kind)] = Bucket(float(limit), float(limit), now)
        bucket.refill(now)
        return bucket

    def _headers(self, requests: Bucket | None, tokens: Bucket | None) -> dict[str, str]:
        return ratelimit_headers(requests, tokens)

    def ping(self) -> str:
        return "in process"

    def close(self) -> None:
        pass


def ratelimit_headers(requests: Bucket | None, tokens: Bucket | None) -> dict[str, str]:
    headers = {}
    for kind, bucket in (("requests", requests), ("tokens", tokens)):
        if bucket is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(int(bucket.capacity))
        headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
        headers[f"x-ratelimit-reset-{kind}"] = openai_duration(
            bucket.seconds_until(bucket.capacity)
        )
    return headers


# KEYS: the requests bucket, the tokens bucket. ARGV: rpm, tpm (0: no limit), tokens to
# spend (0 for a check, which takes one request instead). Returns allowed, the refused
# kind, and each bucket's level (-1 when unlimited), as strings: Lua numbers would be
# truncated to integers on the way out.
_BUCKETS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function refill(key, cap)
  if cap <= 0 then return nil end
  local v = redis.call('HMGET', key, 'level', 'updated', 'cap')
  local level, updated = tonumber(v[1]), tonumber(v[2])
  if level == nil or tonumber(v[3]) ~= cap then level, updated = cap, now end
  return math.min(cap, level + (now - updated) * cap / 60)
end
local function store(key, cap, level)
  if level == nil then return end
  redis.call('HSET', key, 'level', level, 'updated', now, 'cap', cap)
  redis.call('EXPIRE', key, 120)
end
local rpm, tpm, spend = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local req, tok = refill(KEYS[1], rpm), refill(KEYS[2], tpm)
local allowed, kind = 1, ''
if spend > 0 then
  if tok ~= nil then tok = tok - spend end
else
  if req ~= nil and req < 1 then allowed, kind = 0, 'requests'
  elseif tok ~= nil and tok <= 0 then allowed, kind = 0, 'tokens' end
  if allowed == 1 and req ~= nil then req = req - 1 end
end
store(KEYS[1], rpm, req)
store(KEYS[2], tpm, tok)
return {tostring(allowed), kind, tostring(req or -1), tostring(tok or -1)}
"""


class RedisRateLimiter:
    """The same buckets, in Redis, shared by every replica (``redis_url``)."""

    def __init__(
        self,
        url: str,
        prefix: str = "citewise:ratelimit",
        fail_open: bool = False,
        on_outage: Callable[[str], None] | None = None,
    ) -> None:
        import os

        import redis

        password = os.environ.get("REDIS_PASSWORD") or None  # never in the URL (config)
        # Short timeouts: with Redis gone, a request learns it in a second, not a minute.
        self._redis = redis.Redis.from_url(
            url,
            password=password,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=10,
        )
        self._script = self._redis.register_script(_BUCKETS_LUA)
        # Any Redis failure (down, a read-only replica after failover, OOM, ACL): an outage.
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self.prefix = prefix
        self.fail_open = fail_open
        self.on_outage = on_outage or (lambda action: None)

    def check(self, key: str, rpm: int | None, tpm: int | None) -> Verdict:
        try:
            allowed, kind, requests, tokens = self._run(key, rpm, tpm, 0)
        except self._errors as exc:
            return self._outage(exc)
        buckets = (_bucket(rpm, requests), _bucket(tpm, tokens))
        headers = ratelimit_headers(*buckets)
        if allowed:
            return Verdict(True, "requests", 0.0, headers)
        bucket = buckets[0] if kind == "requests" else buckets[1]
        assert bucket is not None
        return Verdict(False, kind, bucket.seconds_until(1), headers)

    def spend_tokens(self, key: str, tpm: int | None, amount: int) -> None:
        if tpm and amount > 0:
            try:
                self._run(key, None, tpm, amount)
            except self._errors as exc:
                # The answer is made and paid for: its tokens go uncounted, never refused.
                log.warning(
                    "rate limits: Redis cannot be reached; %d tokens of key %r not counted (%s)",
                    amount,
                    key,
                    type(exc).__name__,
                )
                self.on_outage("uncounted")

    def _outage(self, exc: Exception) -> Verdict:
        """Redis is down: keys with limits are refused (closed, the default) or served
        without limits (open), as ``rate_limit_outage`` says. Keys without limits never
        reach Redis, so they are served either way."""
        log.warning(
            "rate limits: Redis cannot be reached (%s); failing %s",
            type(exc).__name__,
            "open" if self.fail_open else "closed",
        )
        if self.fail_open:
            self.on_outage("served")
            return Verdict(True, "requests", 0.0, {})
        raise Unavailable(
            "rate_limits",
            "the rate limiter (Redis) cannot be reached, and limits fail closed; retry shortly",
        ) from exc

    def _run(
        self, key: str, rpm: int | None, tpm: int | None, spend: int
    ) -> tuple[bool, str, float, float]:
        if not rpm and not tpm:
            return True, "", -1.0, -1.0
        keys = [f"{self.prefix}:{key}:requests", f"{self.prefix}:{key}:tokens"]
        allowed, kind, requests, tokens = self._script(keys=keys, args=[rpm or 0, tpm or 0, spend])
        return allowed == b"1", kind.decode(), float(requests), float(tokens)

    def ping(self) -> str:
        """Raises when Redis cannot be reached (readyz reports it)."""
        self._redis.ping()
        return "redis"

    def close(self) -> None:
        self._redis.close()


def _bucket(limit: int | None, level: float) -> Bucket | None:
    return Bucket(float(limit), level, 0.0) if limit else None


def limiter_for(
    redis_url: str, fail_open: bool = False, on_outage: Callable[[str], None] | None = None
) -> RateLimiter | RedisRateLimiter:
    """Buckets in this process, or in Redis when replicas share them."""
    if not redis_url:
        return RateLimiter()
    return RedisRateLimiter(redis_url, fail_open=fail_open, on_outage=on_outage)


def openai_duration(seconds: float) -> str:
    """Durations as OpenAI writes them in rate-limit headers: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
