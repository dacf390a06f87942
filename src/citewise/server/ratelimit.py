"""Per-key request and token limits, with OpenAI's headers.

Each limit is a token bucket that holds a minute's allowance and refills
continuously, so a client may burst up to its per-minute limit and then proceeds
at the steady rate. Tokens are charged after a request, when its usage is known
(so one request may overdraw; the next waits until the bucket is positive again).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


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


def openai_duration(seconds: float) -> str:
    """Durations as OpenAI writes them in rate-limit headers: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
