"""Prometheus metrics, in a registry of the app's own (two apps in one process don't clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "citewise_requests",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "citewise_request_duration_seconds",
            "Time to the end of the response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "citewise_tokens",
            "Embedding tokens processed (model tokens: citewise_model_tokens).",
            ["kind"],
            registry=self.registry,
        )
        self.errors = Counter(
            "citewise_errors",
            "Error responses, by OpenAI error type.",
            ["type"],
            registry=self.registry,
        )
        # From the usage ledger: every model call, fallbacks and rewrites included.
        self.model_calls = Counter(
            "citewise_model_calls",
            "Model calls by target and status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.model_tokens = Counter(
            "citewise_model_tokens",
            "Model tokens by target, key and kind (prompt, completion, cached).",
            ["model", "key", "kind"],
            registry=self.registry,
        )
        self.model_cost = Counter(
            "citewise_model_cost_usd",
            "Model cost in USD by target and key (priced targets).",
            ["model", "key"],
            registry=self.registry,
        )
        self.model_queue = Histogram(
            "citewise_model_queue_seconds",
            "Time answers waited for a turn at a one-request-at-a-time (local) model.",
            buckets=(*LATENCY_BUCKETS, 120, 300),
            registry=self.registry,
        )
        self.stream_errors = Counter(
            "citewise_stream_errors",
            "Streams that began with 200 and ended in an error event, by OpenAI error type.",
            ["type"],
            registry=self.registry,
        )
        self.outages = Counter(
            "citewise_dependency_unavailable",
            "Requests that met an unreachable shared dependency (store, ledger, rate limits).",
            ["component", "action"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "citewise_rate_limited",
            "Requests refused by a rate limit.",
            ["limit"],
            registry=self.registry,
        )
        self.embedding_batches = Gauge(
            "citewise_embedding_batches",
            "Embedder calls made by the micro-batcher.",
            registry=self.registry,
        )
        # The store's jobs: every replica sharing it reports the same counts (aggregate
        # with max, not sum); the counters above are this replica's own (sum them).
        self.jobs = Gauge(
            "citewise_ingest_jobs",
            "Ingest jobs in the store by state.",
            ["state"],
            registry=self.registry,
        )
        self.replica = Info(
            "citewise_replica",
            "This server process and the store it shares.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
