"""What the HTTP layer calls: a workspace shared by all requests, plus keys, limits and jobs.

Every read goes through :meth:`Service.scope`, which turns a caller's key and the
collections it asks for into the collections it may read. Retrieval then runs
over those alone, so a passage outside the key's scope is never a candidate —
nothing is filtered out of a model's answer after the fact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from ..access import Caller, key_caller, readable_collections
from ..config import DEFAULT_ASSISTANT, Assistant, Settings, read_assistants
from ..embedders.batching import BatchingEmbedder
from ..keys import ApiKey, any_keys, authenticate
from ..ledger import LedgerRow
from ..names import COLLECTION_NAME, COLLECTION_NAME_RULE, check_collection_name, inside
from ..secrets import redact_url
from ..workspace import Workspace
from .errors import APIError
from .jobs import JobQueue
from .key_traffic import KeyTraffic
from .metrics import Metrics
from .ratelimit import limiter_for
from .replicas import ReplicaBeat
from .source_paths import SourcePaths

# Longest readyz waits for its probes (store, ledger, Redis) together.
READY_PROBE_S = 2.0


class Service:
    def __init__(
        self, workspace: Workspace, auth: bool | None = None, batching: bool = True
    ) -> None:
        self.workspace = workspace
        self.settings: Settings = workspace.settings
        # Auth is on when asked for, or (by default) as soon as any key exists.
        self.auth = any_keys(workspace.store) if auth is None else auth
        self.assistants: dict[str, Assistant] = read_assistants(workspace.path, workspace.config)
        self.metrics = Metrics()
        self.limiter = limiter_for(
            self.settings.redis_url,
            fail_open=self.settings.rate_limit_outage == "open",
            on_outage=lambda action: self.metrics.outages.labels("rate_limits", action).inc(),
        )
        self.embedder: BatchingEmbedder | None = None
        if batching:
            embedder = self.embedder = BatchingEmbedder(workspace.embedder())
            workspace.use_embedder(embedder)
            self.metrics.embedding_batches.set_function(lambda: embedder.batches)
        self.jobs = JobQueue(workspace)
        # This process's record among the replicas sharing the store (the Health view),
        # renewed from the app's lifespan on (create_app) until close().
        self.replica = ReplicaBeat(workspace.store, self.jobs.worker)
        # Requests and 429s per key, counted in memory and flushed to the store's hourly
        # buckets from the app's lifespan on (create_app), a last time at close().
        self.traffic = KeyTraffic(workspace.store)

        def jobs_in(state: str) -> int:
            return self.jobs.counts()[state]

        for state in ("queued", "running", "done", "failed"):
            self.metrics.jobs.labels(state).set_function(partial(jobs_in, state))
        self.metrics.replica.info(
            {"replica": self.jobs.worker, "store": workspace.store.url.split(":")[0]}
        )
        workspace.ledger.listeners.append(self.count_usage)
        self.uploads = workspace.path / "uploads"
        self.resumed = self.jobs.resume(self.uploads)  # what a stopped server left unfinished
        self.root = str(workspace.path.resolve()) + "/"  # stripped from sources shown to callers
        self.shown = SourcePaths(workspace.store, self.root)  # sources as callers see them
        # Signs the web UI's links to recordings (server/media.py): kept in the store, so a
        # link made by one replica plays from any other.
        self.media_secret = workspace.store.shared_secret("media-links")
        self.ready = threading.Event()
        self.startup_error: str | None = None

    def dependencies(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each shared dependency reached now, all at once and within READY_PROBE_S: its
        status ("ok" or "unavailable", what anyone may see) and, for operators, what
        answered (the schema version, the rate limiter's backend) or why not (the driver's
        message, credentials masked). A probe that hangs counts as unavailable: a slow
        readyz would have load balancers drop every replica."""
        probes: dict[str, Callable[[], object]] = {
            "store": lambda: self.workspace.store.schema_version()[-1],
            "ledger": self.workspace.ledger.ping,
            "rate_limits": self.limiter.ping,
        }
        pool = ThreadPoolExecutor(len(probes), thread_name_prefix="citewise-readyz")
        futures = {name: pool.submit(probe) for name, probe in probes.items()}
        wait(futures.values(), timeout=READY_PROBE_S)
        pool.shutdown(wait=False)
        status, details = {}, {}
        for name, future in futures.items():
            if not future.done():
                status[name], details[name] = "unavailable", f"no answer within {READY_PROBE_S:g} s"
            elif future.exception() is not None:
                exc = future.exception()
                status[name] = "unavailable"
                details[name] = redact_url(f"{type(exc).__name__}: {exc}")
            else:
                status[name], details[name] = "ok", str(future.result())
        return status, details

    def warm_up(self) -> None:
        """Load the embedder and the default chat model before the first request needs them."""
        try:
            self.workspace.embedder().embed_batch(["warm up"])
            self.workspace.chat_model(self.assistant(DEFAULT_ASSISTANT).settings(self.settings))
        except Exception as exc:  # readyz reports it; requests get the error themselves
            self.startup_error = str(exc)
        self.ready.set()

    def count_usage(self, rows: Sequence[LedgerRow]) -> None:
        for row in rows:
            # A response replayed from the response cache called no model: its own status.
            status = "cache_hit" if row.cache_hit else row.status
            self.metrics.model_calls.labels(row.target, status).inc()
            for kind in ("prompt", "completion", "cached"):
                amount = getattr(row, f"{kind}_tokens")
                if amount:
                    self.metrics.model_tokens.labels(row.target, row.key, kind).inc(amount)
            if row.cost_usd:
                self.metrics.model_cost.labels(row.target, row.key).inc(row.cost_usd)

    def close(self) -> None:
        self.workspace.ledger.listeners.remove(self.count_usage)
        self.limiter.close()
        self.traffic.close()  # the counts not stored yet
        self.replica.close()
        self.jobs.close()
        if self.embedder is not None:
            self.embedder.close()

    # -- callers -------------------------------------------------------------------

    def authenticate(self, key: str | None) -> ApiKey | None:
        if key is None:
            return None
        return authenticate(self.workspace.store, key)

    def assistant(self, name: str) -> Assistant:
        assistant = self.assistants.get(name)
        if assistant is None:
            known = ", ".join(sorted(self.assistants))
            raise APIError(
                404,
                f"The model '{name}' does not exist; available: {known}",
                code="model_not_found",
                param="model",
            )
        return assistant

    def caller(self, key: ApiKey) -> Caller:
        """Who a key stands for: its user's principals are looked up on each request, so a
        changed membership counts at once. Reads the store: call it from a worker thread."""
        return key_caller(key, self.workspace.store)

    def scope(
        self,
        key: ApiKey | Caller,
        requested: Sequence[str] | None,
        assistant: Assistant | None = None,
    ) -> list[str]:
        """The collections a request reads: what it asked for, within what its key allows."""
        existing = [c.name for c in self.workspace.store.collections()]
        defaults = assistant.collections if assistant else ()
        return readable_collections(key, existing, requested, defaults)

    def writable_collection(self, key: ApiKey, name: str) -> str:
        if not COLLECTION_NAME.fullmatch(name):
            raise APIError(
                422,
                f"Collection names use {COLLECTION_NAME_RULE}",
                code="invalid_collection",
                param="collection",
            )
        if not key.allows_collection(name) or key.user is not None:
            raise APIError(
                403,
                f"This key may not write to the collection '{name}'"
                + (": a user's key only reads" if key.user is not None else ""),
                type="permission_error",
                code="collection_forbidden",
            )
        return name

    def upload_dir(self, collection: str) -> Path:
        directory = inside(self.uploads, check_collection_name(collection))
        directory.mkdir(parents=True, exist_ok=True)
        return directory


def distinct_names(names: list[str]) -> list[str]:
    """Two files of one request with the same name both survive: the second becomes
    ``notes (2).md``. (Across requests, a re-upload replaces the file on purpose.)"""
    taken: set[str] = set()
    distinct = []
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem:
            stem, dot, suffix = name, "", ""
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem} ({n}){dot}{suffix}"
        taken.add(candidate.lower())
        distinct.append(candidate)
    return distinct


def safe_filename(raw: str | None) -> str:
    """A file name safe to create in the upload folder, or "" when nothing usable is left.

    Browsers and clients send names with directories, backslashes, control characters
    and dots; only the last path component survives, without leading dots.
    """
    name = (raw or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    if len(name) > 200:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[:190] + dot + suffix[:9]) if dot and len(suffix) < 10 else name[:200]
    return name
