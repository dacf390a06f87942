"""The operator console's endpoints (``/v1/admin/...``, admin-scoped keys only): keys,
usage over time, budgets with their burn rate, this replica's health, the model chains
with their breakers and last hour's error rates and latencies, and the answer feedback.

Every figure comes from the same sources the CLI reads: keys through ``keys.py`` (as
``citewise keys``), usage through the ledger (as ``citewise usage``: a series' totals
*are* :meth:`Ledger.summary` for the same range), budgets through ``Ledger.budgets``.
Requests and 429s per key are counted here, in memory, and flushed every few seconds to the
store's hourly buckets (:mod:`.key_traffic`), which every replica adds to.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..config import DEFAULT_ASSISTANT, Settings, read_models
from ..errors import CitewiseError, WorkspaceError
from ..keys import ApiKey, create_key, list_keys, revoke_key
from ..ledger import BudgetRule, LedgerRow, iso, period_end, period_start
from ..providers.check import chain_targets, target_check
from ..providers.router import Policy, Target, breaker_for
from ..secrets import redact_url
from ..tuning import labels_from_feedback
from .auth import AdminKey, service_of
from .data_routes import _moment
from .errors import APIError, guarded
from .key_traffic import KeyTraffic
from .key_traffic import empty as empty_traffic
from .schemas import _Body

router = APIRouter(prefix="/v1/admin", tags=["admin"])

BUCKETS = ("day", "hour")
DIMENSIONS = ("key", "model", "assistant", "purpose")


# -- requests and 429s per key (counted here, stored by key_traffic.py) ---------------


class _CountByKey:
    """ASGI middleware inside the observability middleware (which names the key in the
    scope's state before the app runs): counts each identified request by its status."""

    def __init__(self, app: ASGIApp, traffic: KeyTraffic) -> None:
        self.app = app
        self.traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        code = {"status": 500}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            name = scope.get("state", {}).get("key_name")
            if name:
                self.traffic.record(name, code["status"])


def count_requests(app: FastAPI) -> None:
    """Count requests and 429s per key (in the service's :class:`KeyTraffic`, which stores
    them); call before the observability middleware is added (so that it runs outside
    this one and has named the key)."""
    traffic = app.state.service.traffic
    app.state.key_traffic = traffic
    app.add_middleware(_CountByKey, traffic=traffic)


def _traffic(request: Request) -> KeyTraffic:
    traffic = getattr(request.app.state, "key_traffic", None)
    return traffic if isinstance(traffic, KeyTraffic) else KeyTraffic()


# -- keys --------------------------------------------------------------------------------


KeyScope = Literal["ask", "ingest", "admin"]
ASK: KeyScope = "ask"


class KeyCreate(_Body):
    name: str = Field(min_length=1, max_length=64)
    collections: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=200)
    scopes: list[KeyScope] = Field(default_factory=lambda: [ASK], min_length=1, max_length=3)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=320)


def _key_json(
    record: ApiKey, last_call: str | None, traffic: dict[str, Any] | None
) -> dict[str, Any]:
    counts = traffic or empty_traffic()
    seen = counts["last_seen"]
    last_request = None if seen is None else iso(datetime.fromtimestamp(seen, timezone.utc))
    return {
        "object": "key",
        "name": record.name,
        "prefix": record.prefix,
        "user": record.user,
        "scopes": list(record.scopes),
        "collections": list(record.collections),
        "rpm": record.rpm,
        "tpm": record.tpm,
        "created": record.created_at,
        "revoked": record.revoked_at,
        # The later of its last request (to any replica) and its last model call.
        "last_used": max((t for t in (last_request, last_call) if t), default=None),
        "last_request": last_request,
        "last_call": last_call,
        # Every replica's, stored per hour; "24h": the current hour and the 23 before it.
        "requests": counts["requests"],
        "rate_limited": counts["rate_limited"],
        "requests_24h": counts["requests_24h"],
        "rate_limited_24h": counts["rate_limited_24h"],
    }


@router.get("/keys")
async def admin_keys(request: Request, key: AdminKey, revoked: bool = True) -> JSONResponse:
    """Every key (revoked ones too unless ``revoked=false``): never the secret.
    ``requests`` and ``rate_limited`` (429 answers) in total and over the last 24 h
    (``requests_24h``, ``rate_limited_24h``) are every replica's: the store's hourly counts
    plus those this process has not flushed yet."""
    service = service_of(request)
    traffic = _traffic(request)

    def run() -> list[dict[str, Any]]:
        last = service.workspace.ledger.last_calls()
        records = list_keys(service.workspace.store, include_revoked=revoked)
        counts = traffic.totals()
        return [
            _key_json(r, last.get(r.name), counts.get(r.name))  # by name, as the ledger
            for r in records
        ]

    data = await run_in_threadpool(guarded, run)
    return JSONResponse({"object": "list", "data": data})


@router.post("/keys", status_code=201)
async def admin_create_key(body: KeyCreate, request: Request, key: AdminKey) -> JSONResponse:
    """Create a key; the answer's ``key`` is the secret, shown this once (only its hash is
    stored)."""
    service = service_of(request)

    def run() -> tuple[str, ApiKey]:
        store = service.workspace.store
        if any(k.name == body.name for k in list_keys(store)):
            raise APIError(
                409,
                f"A key named {body.name!r} exists; revoke it or pick another name",
                code="key_exists",
                param="name",
            )
        try:
            return create_key(
                store,
                body.name,
                body.collections,
                list(body.scopes),
                body.rpm,
                body.tpm,
                user=body.user,
            )
        except WorkspaceError as exc:  # a name, scope, limit or user's scope it refuses
            raise APIError(422, str(exc), code="invalid_request") from None

    secret, record = await run_in_threadpool(run)
    body_json = _key_json(record, None, None) | {"key": secret}
    return JSONResponse(body_json, status_code=201)


@router.delete("/keys/{name}")
async def admin_revoke_key(name: str, request: Request, key: AdminKey) -> JSONResponse:
    """Revoke a key: the next request with it gets 401."""
    service = service_of(request)

    def run() -> None:
        try:
            revoke_key(service.workspace.store, name)
        except WorkspaceError as exc:
            raise APIError(404, str(exc), code="key_not_found") from None

    await run_in_threadpool(run)
    return JSONResponse({"object": "key.revoked", "name": name, "revoked": True})


# -- usage over time ---------------------------------------------------------------------


def _bucket(at: str, bucket: str) -> str:
    """The start of the UTC day or hour a ledger time falls in, as ISO 8601."""
    return at[:10] + "T00:00:00Z" if bucket == "day" else at[:13] + ":00:00Z"


def _group(row: LedgerRow, by: str) -> str:
    # As the ledger groups: "model" is the target (provider:model) that was called.
    return str(
        {"key": row.key, "model": row.target, "assistant": row.assistant}.get(by, row.purpose)
    )


def _empty() -> dict[str, Any]:
    return {
        "calls": 0,
        "failed": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "tokens": 0,
        "cost_usd": None,
        "unpriced_calls": 0,
        "cache_hits": 0,
        "saved_usd": None,
    }


def _add(cell: dict[str, Any], row: LedgerRow) -> None:
    cell["calls"] += 1
    cell["failed"] += row.status not in ("ok", "cancelled")
    cell["prompt_tokens"] += row.prompt_tokens
    cell["completion_tokens"] += row.completion_tokens
    cell["tokens"] += row.prompt_tokens + row.completion_tokens
    if row.cost_usd is None:
        cell["unpriced_calls"] += 1
    else:  # as SQL's SUM: None until a priced call, in the ledger's order
        cell["cost_usd"] = (cell["cost_usd"] or 0.0) + row.cost_usd
    cell["cache_hits"] += row.cache_hit
    if row.saved_usd is not None:
        cell["saved_usd"] = (cell["saved_usd"] or 0.0) + row.saved_usd


def usage_series(
    rows: Sequence[LedgerRow], summary: list[dict[str, Any]], bucket: str, by: str
) -> dict[str, Any]:
    """Per bucket per group from the ledger's rows; ``totals`` per group are the ledger's
    own summary (what ``citewise usage --by BY`` prints), with cache hits and savings."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = _group(row, by)
        _add(cells.setdefault((_bucket(row.at, bucket), group), _empty()), row)
        _add(extra.setdefault(group, _empty()), row)
    data = [{"bucket": b, "group": g, **cell} for (b, g), cell in sorted(cells.items())]
    totals = []
    for entry in summary:
        group = str(entry[by])
        more = extra.get(group, _empty())
        tokens = entry["prompt_tokens"] + entry["completion_tokens"]
        totals.append(
            {"group": group, **{k: v for k, v in entry.items() if k != by}, "tokens": tokens}
            | {"cache_hits": more["cache_hits"], "saved_usd": more["saved_usd"]}
        )
    top = sorted(totals, key=lambda t: (-(t["cost_usd"] or 0.0), -t["tokens"], t["group"]))
    return {
        "object": "usage.series",
        "bucket": bucket,
        "by": by,
        "buckets": sorted({b for b, _ in cells}),
        "groups": sorted({g for _, g in cells}),
        "data": data,
        "totals": totals,
        "top": [t["group"] for t in top[:5]],
    }


@router.get("/usage/series")
async def admin_usage_series(
    request: Request,
    key: AdminKey,
    bucket: str = Query("day", description="day or hour (UTC)"),
    by: str = Query("key", description="key, model, assistant or purpose"),
    since: str | None = Query(None, description="ISO 8601 date or time; default: all"),
    key_name: str | None = Query(None, alias="key", description="only this key's calls"),
) -> JSONResponse:
    """Calls, tokens, cost, cache hits and savings per day or hour, per key, model,
    assistant or purpose; ``totals`` equal ``citewise usage --by BY --since SINCE``."""
    for name, value, allowed in (("bucket", bucket, BUCKETS), ("by", by, DIMENSIONS)):
        if value not in allowed:
            raise APIError(
                422,
                f"{name} must be one of {', '.join(allowed)}; got {value!r}",
                code="invalid_request",
                param=name,
            )
    moment = _moment(since)
    ledger = service_of(request).workspace.ledger

    def run() -> dict[str, Any]:
        rows = ledger.rows(moment, key_name)
        summary = ledger.summary(by, moment, key_name)
        return usage_series(rows, summary, bucket, by) | {"since": moment, "key": key_name}

    return JSONResponse(await run_in_threadpool(guarded, run))


# -- budgets -----------------------------------------------------------------------------


def budget_state(rule: BudgetRule, rows: Sequence[LedgerRow], now: datetime) -> dict[str, Any]:
    """A budget with what its subject spent this period (as the ledger counts it when it
    reserves: cost, or prompt + completion tokens), the burn rate over the period so far,
    and when that rate would exhaust it (None: not before the period resets)."""
    start, end = period_start(rule.period, now), period_end(rule.period, now)
    mine = [
        r
        for r in rows
        if (r.key if rule.kind == "key" else r.assistant) == rule.subject and r.at >= iso(start)
    ]
    step = "hour" if rule.period == "day" else "day"
    spent, burn = 0.0, list[dict[str, Any]]()
    for row in mine:
        amount = (
            (row.cost_usd or 0.0)
            if rule.metric == "usd"
            else float(row.prompt_tokens + row.completion_tokens)
        )
        spent += amount
        moment = _bucket(row.at, step)
        if burn and burn[-1]["at"] == moment:
            burn[-1]["spent"] = spent
        else:
            burn.append({"at": moment, "spent": spent})
    hours = max((now - start).total_seconds() / 3600, 1 / 60)
    rate = spent / hours  # per hour
    exhausted = spent >= rule.amount
    projected: str | None = None
    if exhausted:
        projected = iso(now)
    elif rate > 0:
        when = now + timedelta(hours=(rule.amount - spent) / rate)
        projected = iso(when) if when < end else None
    return {
        "object": "budget",
        "kind": rule.kind,
        "subject": rule.subject,
        "metric": rule.metric,
        "period": rule.period,
        "amount": rule.amount,
        "hard": rule.hard,
        "spent": spent,
        "remaining": max(rule.amount - spent, 0.0),
        "period_start": iso(start),
        "resets_at": iso(end),
        "burn_per_hour": rate,
        "exhausted": exhausted,
        "projected_exhaustion": projected,
        "burn": burn,
    }


@router.get("/budgets")
async def admin_budgets(request: Request, key: AdminKey) -> JSONResponse:
    """Each budget with ``spent`` this period, ``remaining``, the period's burn rate and
    ``projected_exhaustion`` (the moment that rate runs it out; null: not before
    ``resets_at``), and ``burn``: the cumulative spend per hour (daily budgets) or day."""
    ledger = service_of(request).workspace.ledger

    def run() -> list[dict[str, Any]]:
        now = ledger.clock()
        rules = ledger.budgets()
        if not rules:
            return []
        rows = ledger.rows(iso(period_start("month", now)))
        return [budget_state(rule, rows, now) for rule in rules]

    data = await run_in_threadpool(guarded, run)
    return JSONResponse({"object": "list", "data": data})


# -- health ------------------------------------------------------------------------------


@router.get("/health")
async def admin_health(request: Request, key: AdminKey) -> JSONResponse:
    """What ``/readyz`` shows an admin (each component and what answered), with the
    version, the schema's migrations, this replica's name and ``replicas``: the server
    processes sharing the store (PostgreSQL), or this one alone (SQLite)."""
    service = service_of(request)
    status, details = await run_in_threadpool(service.dependencies)
    server = request.scope.get("server")

    def replicas() -> list[dict[str, Any]]:
        if server and server[1] is not None:  # the address it serves on, if not known yet
            service.replica.note_address(f"{server[0]}:{server[1]}")
        # Several servers share a PostgreSQL store; a SQLite workspace is this process's.
        return service.replica.listed(not service.workspace.store.url.startswith("sqlite"))

    try:
        listed = await run_in_threadpool(replicas)
    except Exception:  # the store is down: its component says so
        listed = []
    ready = service.ready.is_set()
    model = "loading" if not ready else "error" if service.startup_error else "ok"
    schema = details.get("store") if status.get("store") == "ok" else None
    overall = (
        "loading"
        if not ready
        else "error"
        if service.startup_error
        else "degraded"
        if "unavailable" in status.values()
        else "ready"
    )
    return JSONResponse(
        {
            "object": "health",
            "status": overall,
            "version": __version__,
            "schema": schema,
            "replica": service.jobs.worker,
            "replicas": listed,
            "auth": service.auth,
            "components": {**status, "model": model},
            "details": {**details, "model": redact_url(service.startup_error or "loaded")},
        }
    )


# -- models --------------------------------------------------------------------------------

MODEL_WINDOW = timedelta(hours=1)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1): the smallest value with at least
    that share of the values at or below it; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


def target_stats(rows: Sequence[LedgerRow], spec: str) -> dict[str, Any]:
    """A target's attempts in ``rows``: ``calls`` reached it (a ``circuit_open`` attempt
    was skipped, not made; a response-cache hit called nothing), ``failed`` of them,
    and the p50/p95 latency and time to first token of those calls."""
    mine = [r for r in rows if r.target == spec and not r.cache_hit]
    made = [r for r in mine if r.status != "circuit_open"]
    failed = sum(r.status not in ("ok", "cancelled") for r in made)
    latency = [r.latency_s for r in made]
    first = [r.first_token_s for r in made if r.first_token_s is not None]
    errors = [r for r in made if r.error]
    return {
        "calls": len(made),
        "failed": failed,
        "skipped": len(mine) - len(made),
        "error_rate": failed / len(made) if made else None,
        "latency_p50_s": percentile(latency, 0.5),
        "latency_p95_s": percentile(latency, 0.95),
        "first_token_p50_s": percentile(first, 0.5),
        "first_token_p95_s": percentile(first, 0.95),
        "last_error": redact_url(errors[-1].error or "") if errors else None,
        "last_error_at": errors[-1].at if errors else None,
    }


@dataclass
class Chain:
    """A chain of targets the server may call: an alias's, or one ``provider:model``."""

    name: str
    alias: bool
    policy: Policy
    targets: list[Target]
    settings: Settings
    assistants: list[str] = field(default_factory=list)


def server_chains(service: Any) -> list[Chain]:
    """Each chain an assistant of this server uses (the default ``citewise`` first), then
    every other ``[models.NAME]`` alias of the workspace."""
    workspace = service.workspace
    aliases, _ = read_models(workspace.path, workspace.config)
    chains: dict[tuple[str, tuple[tuple[str, str], ...]], Chain] = {}

    def add(settings: Settings, assistant: str | None) -> None:
        alias = aliases.get(settings.model)
        targets = chain_targets(workspace, settings)
        name = alias.name if alias else targets[0].spec
        identity = (name, tuple((t.spec, t.base_url) for t in targets))
        if identity not in chains:
            policy = (
                Policy(
                    breaker_failures=alias.breaker_failures, breaker_cooldown=alias.breaker_cooldown
                )
                if alias
                else Policy()
            )
            chains[identity] = Chain(name, alias is not None, policy, targets, settings)
        if assistant is not None:
            chains[identity].assistants.append(assistant)

    names = sorted(service.assistants, key=lambda n: (n != DEFAULT_ASSISTANT, n))
    for name in names:
        add(service.assistants[name].settings(service.settings), name)
    used = {chain.name for chain in chains.values()}
    for name in sorted(set(aliases) - used):
        add(replace(service.settings, model=name), None)
    return list(chains.values())


def chain_json(chain: Chain, rows: Sequence[LedgerRow]) -> dict[str, Any]:
    return {
        "object": "model.chain",
        "name": chain.name,
        "alias": chain.alias,
        "assistants": chain.assistants,
        "breaker_failures": chain.policy.breaker_failures,
        "breaker_cooldown_s": chain.policy.breaker_cooldown,
        "targets": [
            {
                "spec": target.spec,
                "provider": target.provider,
                "model": target.model,
                "base_url": redact_url(target.base_url) if target.base_url else None,
                "input_price": target.price.input,
                "output_price": target.price.output,
                "breaker": breaker_for(target, chain.policy).state,
            }
            | target_stats(rows, target.spec)
            for target in chain.targets
        ],
    }


@router.get("/models")
async def admin_models(request: Request, key: AdminKey) -> JSONResponse:
    """Each chain the server may call (an assistant's ``[models.NAME]`` alias or its one
    ``provider:model``, then the workspace's other aliases) and each target's circuit
    breaker (``closed``, ``open``, ``half_open``: this process's), with its calls, error
    rate and p50/p95 latency and time to first token from the ledger's last hour."""
    service = service_of(request)
    ledger = service.workspace.ledger

    def run() -> dict[str, Any]:
        now = ledger.clock()
        since = iso(now - MODEL_WINDOW)
        rows = ledger.rows(since)
        data = [chain_json(chain, rows) for chain in server_chains(service)]
        return {"object": "list", "since": since, "until": iso(now), "data": data}

    return JSONResponse(await run_in_threadpool(guarded, run))


class TargetTest(_Body):
    target: str = Field(min_length=1, max_length=300, description="provider:model")
    chain: str | None = Field(default=None, max_length=300, description="default: the first")


@router.post("/models/test")
async def admin_test_target(body: TargetTest, request: Request, key: AdminKey) -> JSONResponse:
    """Run ``citewise doctor``'s check on one target: load it and ask it to say OK, with
    no retry or fallback. ``ok`` false names why (200: the test ran)."""
    service = service_of(request)

    def run() -> dict[str, Any]:
        chains = [c for c in server_chains(service) if body.chain in (None, c.name)]
        found = [(c, t) for c in chains for t in c.targets if t.spec == body.target]
        if not found:
            raise APIError(
                404,
                f"No chain of this server has the target {body.target!r}",
                code="target_not_found",
                param="target",
            )
        chain, target = found[0]
        notes: list[str] = []
        started = time.monotonic()
        try:
            detail = target_check(service.workspace, target, chain.settings, notes.append)
            ok = True
        except (CitewiseError, OSError, ImportError) as exc:
            detail, ok = str(exc), False
        return {
            "object": "model.test",
            "chain": chain.name,
            "target": target.spec,
            "ok": ok,
            "detail": redact_url(detail),
            "notes": [redact_url(n) for n in notes],
            "seconds": round(time.monotonic() - started, 3),
            "breaker": breaker_for(target, chain.policy).state,
        }

    return JSONResponse(await run_in_threadpool(guarded, run))


# -- quality: feedback -----------------------------------------------------------------------


def feedback_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "feedback",
        "id": row["id"],
        "key": row["key_name"],
        "rating": row["rating"],
        "question": row["question"],
        "answer": row["answer"],
        "citations": row["citations"],
        "model": row["model"],
        "comment": row["comment"],
        "created": row["created_at"],
    }


@router.get("/feedback")
async def admin_feedback(
    request: Request,
    key: AdminKey,
    rating: int | None = Query(None, description="1 (👍) or -1 (👎); default: both"),
) -> JSONResponse:
    """The 👍/👎 answer feedback (``POST /v1/feedback``), newest first: each with its key,
    question, answer, the citations the answer carried, model, comment and time; ``up`` and
    ``down`` count every entry."""
    if rating not in (None, 1, -1):
        raise APIError(422, "rating must be 1 or -1", code="invalid_request", param="rating")
    store = service_of(request).workspace.store

    def run() -> dict[str, Any]:
        rows = store.feedback()
        data = [feedback_json(r) for r in reversed(rows) if rating in (None, r["rating"])]
        up = sum(r["rating"] > 0 for r in rows)
        return {"object": "list", "data": data, "up": up, "down": len(rows) - up}

    return JSONResponse(await run_in_threadpool(guarded, run))


def feedback_labels(workspace: Any, collection: str) -> list[dict[str, Any]]:
    """The feedback as ``citewise tune`` learns from it (:func:`labels_from_feedback`), as
    labelled-query lines: ``relevant``, the sources 👍 answers cited; ``not_relevant``, those
    only 👎 answers cited (the JSONL reader ignores it). A question with no relevant source
    is left out: a line needs one."""
    queries, qrels = labels_from_feedback(workspace, collection)
    lines = []
    for qid, query in queries.items():
        grades = qrels.get(qid, {})
        relevant = sorted(s for s, g in grades.items() if g > 0)
        if relevant:
            others = sorted(s for s, g in grades.items() if g <= 0)
            lines.append({"id": qid, "query": query, "relevant": relevant, "not_relevant": others})
    return lines


@router.get("/feedback/export")
async def admin_feedback_export(
    request: Request,
    key: AdminKey,
    collection: str = Query("default", description="the collection the labels judge"),
) -> Response:
    """The feedback as labelled queries, one JSON object a line (``{"id", "query",
    "relevant": [source, ...], "not_relevant": [...]}``): the file ``citewise tune LABELS``
    and ``citewise eval retrieval`` read."""
    workspace = service_of(request).workspace
    lines = await run_in_threadpool(guarded, lambda: feedback_labels(workspace, collection))
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    # Headers are Latin-1: an ASCII name, and the collection's own in RFC 5987's form.
    filename = f"feedback-{collection}.jsonl"
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    disposition = f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename)}"
    return Response(
        text, media_type="application/x-ndjson", headers={"Content-Disposition": disposition}
    )
