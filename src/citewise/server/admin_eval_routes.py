"""The operator console's evaluation runs (``/v1/admin/eval/...``, admin-scoped keys
only): the runs ``citewise eval retrieval`` and ``eval answers`` stored, each with its
main metric, and one run with its per-query results — what ``citewise eval runs`` and
``citewise eval show ID`` print.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..eval_runs import KINDS, main_metric
from .auth import AdminKey, service_of
from .data_routes import StoredId
from .errors import APIError, guarded

router = APIRouter(prefix="/v1/admin/eval", tags=["admin"])


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    return {"object": "eval.run", **run, "main_metric": main_metric(run["kind"], run["metrics"])}


@router.get("/runs")
async def admin_eval_runs(
    request: Request,
    key: AdminKey,
    kind: str | None = Query(None, description="retrieval or answers; default: both"),
    limit: int = Query(500, ge=1, le=5000, description="the newest runs returned"),
) -> JSONResponse:
    """The stored evaluation runs, newest first, without their per-query results: each
    run's ``id``, ``created``, ``kind``, ``dataset``, ``queries``, ``settings``,
    ``metrics`` (per mode for retrieval) and ``main_metric`` (``name``, ``mode``,
    ``value``: nDCG@10 of the hybrid mode for retrieval, token F1 for answers)."""
    if kind is not None and kind not in KINDS:
        raise APIError(
            422, "kind must be retrieval or answers", code="invalid_request", param="kind"
        )
    store = service_of(request).workspace.store

    def run() -> dict[str, Any]:
        runs = store.eval_runs(limit, kind)  # the newest ``limit`` of that kind
        return {"object": "list", "data": [run_json(r) for r in runs]}

    return JSONResponse(await run_in_threadpool(guarded, run))


@router.get("/runs/{run_id}")
async def admin_eval_run(request: Request, key: AdminKey, run_id: StoredId) -> JSONResponse:
    """One run with ``results``, per query: for retrieval its ``id``, ``query``,
    ``expected`` (judged documents and grades) and per mode the ``ranked`` documents
    (``[document, score]``, the first ten) and its ``metrics``; for answers its ``id``,
    ``question``, ``answer``, ``citations`` (the sources it cited) and ``metrics``."""
    store = service_of(request).workspace.store
    found = await run_in_threadpool(guarded, lambda: store.eval_run(run_id))
    if found is None:
        raise APIError(404, f"no evaluation run {run_id}", code="eval_run_not_found")
    return JSONResponse(run_json(found))
