"""The operator console's endpoints (``/v1/admin/...``, admin-scoped keys only): keys,
usage over time, budgets with their burn rate, and this replica's health.

Every figure comes from the same sources the CLI reads: keys through ``keys.py`` (as
``citewise keys``), usage through the ledger (as ``citewise usage``: a series' totals
*are* :meth:`Ledger.summary` for the same range), budgets through ``Ledger.budgets``.
Requests and 429s per key are counted here, in memory, by this process since it started
(:class:`KeyTraffic`): no store keeps them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import WorkspaceError
from ..keys import ApiKey, create_key, list_keys, revoke_key
from ..ledger import BudgetRule, LedgerRow, iso, period_end, period_start
from ..secrets import redact_url
from .auth import AdminKey, service_of
from .data_routes import _moment
from .errors import APIError, guarded
from .schemas import _Body

router = APIRouter(prefix="/v1/admin", tags=["admin"])

BUCKETS = ("day", "hour")
DIMENSIONS = ("key", "model", "assistant", "purpose")


# -- requests and 429s per key (this process) ------------------------------------------


@dataclass
class Traffic:
    requests: int = 0
    rate_limited: int = 0
    last_seen: float | None = None


@dataclass
class KeyTraffic:
    """Requests and 429 answers per key name, counted by this process since it started."""

    by_key: dict[str, Traffic] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)

    def record(self, key: str, status: int) -> None:
        with self.lock:
            seen = self.by_key.setdefault(key, Traffic())
            seen.requests += 1
            seen.rate_limited += status == 429
            seen.last_seen = time.time()

    def get(self, key: str) -> Traffic:
        with self.lock:
            seen = self.by_key.get(key, Traffic())
            return Traffic(seen.requests, seen.rate_limited, seen.last_seen)


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
    """Count requests and 429s per key; call before the observability middleware is added
    (so that it runs outside this one and has named the key)."""
    traffic = KeyTraffic()
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
    record: ApiKey, last_call: str | None, traffic: Traffic, started: float
) -> dict[str, Any]:
    seen = (
        None
        if traffic.last_seen is None
        else iso(datetime.fromtimestamp(traffic.last_seen, timezone.utc))
    )
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
        # The later of its last request to this process and its last model call.
        "last_used": max((t for t in (seen, last_call) if t), default=None),
        "last_call": last_call,
        "requests": traffic.requests,
        "rate_limited": traffic.rate_limited,
        "counted_since": iso(datetime.fromtimestamp(started, timezone.utc)),
    }


@router.get("/keys")
async def admin_keys(request: Request, key: AdminKey, revoked: bool = True) -> JSONResponse:
    """Every key (revoked ones too unless ``revoked=false``): never the secret. ``requests``
    and ``rate_limited`` are this server process's counts since ``counted_since``."""
    service = service_of(request)
    traffic = _traffic(request)

    def run() -> list[dict[str, Any]]:
        last = service.workspace.ledger.last_calls()
        records = list_keys(service.workspace.store, include_revoked=revoked)
        return [
            _key_json(
                r,
                last.get(r.name),  # the ledger charges a key by its name
                traffic.get(r.name),
                traffic.started,
            )
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
    body_json = _key_json(record, None, Traffic(), _traffic(request).started) | {"key": secret}
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
    version, the schema's migrations and this replica's name."""
    service = service_of(request)
    status, details = await run_in_threadpool(service.dependencies)
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
            "auth": service.auth,
            "components": {**status, "model": model},
            "details": {**details, "model": redact_url(service.startup_error or "loaded")},
        }
    )
