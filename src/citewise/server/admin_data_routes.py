"""The operator console's data endpoints (``/v1/admin/...``, admin-scoped keys only): the
collections with their documents, chunks and sources, a document with its chunks and the
rated answers that cited them, re-ingesting a document, and the ingest jobs with retry.

Figures come from the Python API: collections from :meth:`Workspace.status` (what
``citewise status`` prints) and the store's per-source counts, documents through
:meth:`Workspace.document` and :meth:`Workspace.document_passages`, jobs through the
server's :class:`~citewise.server.jobs.JobQueue`. Deleting a document is the existing
``DELETE /v1/collections/{c}/documents/{id}``.

Which chunk an answer cited is recorded only when a reader rates the answer: the feedback
row keeps the citations the client sent (each with its ``document_id`` and ``chunk_id``).
The usage ledger records model calls, not passages, and no other table keeps citations, so
a chunk's "cited by" lists rated answers only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import NotFound
from ..ledger import iso
from .auth import AdminKey, service_of
from .data_routes import MAX_STORED_ID, _record_json
from .errors import APIError, guarded
from .jobs import Job, NotRetryable, retry_plan
from .service import Service
from .source_paths import is_server_path

router = APIRouter(prefix="/v1/admin", tags=["admin"])

JOB_STATES = ("queued", "running", "done", "failed")
# A document id as the stores keep it (a 64-bit integer): a larger one is a 422.
DocumentId = PathParam(ge=1, le=MAX_STORED_ID)
CITATIONS_NOTE = (
    "Citations are recorded only for answers a reader rated helpful or not (the chat "
    "page's buttons, POST /v1/feedback): "
    "the feedback keeps the passages the answer cited. Answers nobody rated leave no "
    "record of what they cited."
)


def source_kind(source: str) -> str:
    """The scheme of a connector's source, ``file`` for a server path, else ``item`` (a
    document added by its id: the Python API's ``add_items``, a BEIR corpus) — as the
    store's :meth:`source_kinds` groups them."""
    at = source.find("://")
    return source[:at] if at > 0 else "file" if is_server_path(source) else "item"


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else iso(datetime.fromtimestamp(seconds, timezone.utc))


# -- collections ---------------------------------------------------------------------------


def collections_json(service: Service) -> list[dict[str, Any]]:
    """Each collection as ``citewise status`` counts it, its documents per kind of source,
    and its last ingest run (the latest sync: its outcome and the sources that failed)."""
    workspace = service.workspace
    status = workspace.status()
    runs = {run["collection"]: run for run in status.runs}
    data = []
    for c in status.collections:
        record = workspace.store.collection(c.name)
        kinds = workspace.store.source_kinds(record.id) if record else []
        run = runs.get(c.name)
        failures = [
            {
                "source": service.shown.shown(source, c.name),
                "kind": source_kind(source),
                "reason": reason,
            }
            for source, reason in (run["failures"] if run else [])
        ]
        sources = []
        for kind in kinds:
            failed = sum(f["kind"] == kind.kind for f in failures)
            sources.append(
                {
                    "kind": kind.kind,
                    "documents": kind.documents,
                    "chunks": kind.chunks,
                    "bytes": kind.bytes,
                    "updated_at": kind.updated_at,
                    "failed": failed,
                    "status": "failures" if failed else "ok",
                }
            )
        # A kind whose every source failed in the last run has no documents to group.
        for kind_name in sorted({f["kind"] for f in failures} - {k.kind for k in kinds}):
            failed = sum(f["kind"] == kind_name for f in failures)
            sources.append(
                {
                    "kind": kind_name,
                    "documents": 0,
                    "chunks": 0,
                    "bytes": 0,
                    "updated_at": None,
                    "failed": failed,
                    "status": "failures",
                }
            )
        data.append(
            {
                "object": "collection",
                "name": c.name,
                "embedder": c.embedder,
                "dim": c.dim,
                "documents": c.documents,
                "chunks": c.chunks,
                "tokens": c.tokens,
                "bytes": sum(k.bytes for k in kinds),
                "open_documents": c.open_documents,
                "restricted_documents": c.restricted_documents,
                "vector_index": c.vector_index,
                "keyword_index": c.keyword_index,
                "last_sync": None
                if run is None
                else {
                    "started_at": run["started_at"],
                    "finished_at": run["finished_at"],
                    "status": run["status"],
                    "counts": {
                        k: v for k, v in run["counts"].items() if isinstance(v, int | float)
                    },
                    "failures": failures,
                },
                "sources": sources,
            }
        )
    return data


@router.get("/collections")
async def admin_collections(request: Request, key: AdminKey) -> JSONResponse:
    """Every collection: ``documents``, ``chunks`` and ``tokens`` (as ``citewise status``),
    ``bytes`` (the sizes of its file sources), its embedder and indexes, ``last_sync`` (its
    latest ingest run, with the sources that failed) and ``sources``: its documents per kind
    of source (``file`` or a connector's scheme) with their last write and ``status``."""
    service = service_of(request)
    data = await run_in_threadpool(guarded, lambda: collections_json(service))
    return JSONResponse({"object": "list", "data": data})


# -- a document and its chunks -------------------------------------------------------------


def _reingest_refusal(source: str) -> str | None:
    """Why a document cannot be read again from its source here (None: it can)."""
    if not is_server_path(source):
        kind = source_kind(source)
        return (
            f"It came from a {kind} source: an export or crawl is read again whole, with "
            f"`citewise ingest` (or a new upload of the export)."
        )
    if not Path(source).is_file():
        return "Its file is no longer on the server: upload it again."
    return None


def document_json(service: Service, collection: str, document_id: int, key: Any) -> dict[str, Any]:
    """A document, its chunks in order, and for each chunk the rated answers that cited it
    (see the module's docstring: only rated answers record their citations)."""
    workspace = service.workspace
    caller = service.caller(key)
    record = workspace.document(collection, document_id, caller)
    passages = workspace.document_passages(document_id, caller)
    ids = {p.chunk_id for p in passages}
    by_chunk: dict[int, list[dict[str, Any]]] = {}
    earlier: list[dict[str, Any]] = []
    for entry in workspace.store.feedback():
        for citation in entry["citations"]:
            if not isinstance(citation, dict):
                continue
            if citation.get("document_id") != document_id:
                continue
            if citation.get("collection") not in (None, collection):
                continue
            seen = {
                "feedback_id": entry["id"],
                "rating": entry["rating"],
                "question": entry["question"],
                "key": entry["key_name"],
                "created": entry["created_at"],
                "number": citation.get("number"),
                "quote": citation.get("quote"),
            }
            chunk = citation.get("chunk_id")
            if chunk in ids:
                by_chunk.setdefault(int(chunk), []).append(seen)
            else:  # a chunk of an earlier version of the document (re-ingested since)
                earlier.append(seen | {"chunk_id": chunk})
    chunks = [
        {
            "id": p.chunk_id,
            "number": n,
            "start": p.start,
            "end": p.end,
            "page": p.page,
            "heading_path": list(p.heading_path),
            "location": p.location,
            "text": p.text,
            "cited_by": by_chunk.get(p.chunk_id, []),
        }
        for n, p in enumerate(passages, start=1)
    ]
    refusal = _reingest_refusal(record.source)
    return _record_json(record, service, admin=True) | {
        "kind": source_kind(record.source),
        "chunk_list": chunks,
        "cited_earlier_version": earlier,
        "citations_recorded": "feedback",
        "citations_note": CITATIONS_NOTE,
        "reingest": {"possible": refusal is None, "reason": refusal},
    }


@router.get("/collections/{collection}/documents/{document_id}")
async def admin_document(
    collection: str, request: Request, key: AdminKey, document_id: int = DocumentId
) -> JSONResponse:
    """A document (as ``GET /v1/collections/{c}/documents/{id}`` without its text), its
    chunks in order (``chunk_list``: id, span, page, headings, text) each with
    ``cited_by``: the rated answers whose citations name it; ``cited_earlier_version``:
    rated answers citing chunks it no longer has (re-ingested since); and whether it can
    be re-ingested (``reingest``: ``possible``, ``reason``)."""
    service = service_of(request)
    body = await run_in_threadpool(
        guarded, lambda: document_json(service, collection, document_id, key)
    )
    return JSONResponse(body)


@router.post("/collections/{collection}/documents/{document_id}/reingest", status_code=202)
async def admin_reingest(
    collection: str, request: Request, key: AdminKey, document_id: int = DocumentId
) -> JSONResponse:
    """Parse and embed a document again from its file on the server (an upload, or a file
    ingested from a folder): an ingest job, as an upload's (202 with the job; watch it in
    ``GET /v1/admin/jobs``). The document stays searchable until the job replaces it.
    409 ``not_reingestable`` (with the reason) for a connector's document or a file that
    is gone."""
    service = service_of(request)

    def run() -> Job:
        record = service.workspace.document(collection, document_id, service.caller(key))
        refusal = _reingest_refusal(record.source)
        if refusal is not None:
            raise APIError(409, refusal, code="not_reingestable")
        path = Path(record.source)
        # Without its hash, mtime and size the ingest cannot find it unchanged.
        service.workspace.store.mark_document_stale(document_id)
        shown = service.shown.shown(record.source, collection)
        return service.jobs.submit(record.collection, [(shown, path)])

    job = await run_in_threadpool(guarded, run)
    return JSONResponse(job.as_json(), status_code=202)


# -- jobs ------------------------------------------------------------------------------------


def job_json(job: Job, retried_by: dict[str, str]) -> dict[str, Any]:
    files, gone = retry_plan(job)
    finished = job.status in ("done", "failed")
    failed = [f for f in job.files if f.status == "failed"]
    retry = retried_by.get(job.id)
    if retry is not None:  # its failed files are the retry's now (JobQueue.retry)
        files = []
    note: str | None = None
    if retry is not None and (failed or job.status == "failed"):
        note = f"Retried as job {retry}: retry that job if its files failed again."
    elif not finished or files:
        pass
    elif gone:
        note = (
            f"Cannot retry: the uploads of {', '.join(gone)} are gone from the server "
            "(deleted, or the upload folder was cleaned). Upload the files again."
        )
    elif failed or job.status == "failed":
        note = "Cannot retry: no failed file is left to run."
    return job.as_json() | {
        "created": _time(job.created_at),
        "finished": _time(job.finished_at),
        "failed": len(failed),
        "retryable": finished and bool(files),
        "retry_files": [name for name, _ in files] if finished else [],
        "retry_note": note,
        "retried_by": retried_by.get(job.id),
    }


@router.get("/jobs")
async def admin_jobs(
    request: Request,
    key: AdminKey,
    status: str | None = Query(None, description="queued, running, done or failed"),
    collection: str | None = Query(None, description="only this collection's jobs"),
    limit: int = Query(50, ge=1, le=500),
) -> JSONResponse:
    """The ingest jobs (uploads, re-ingests, retries), newest first: each one's files with
    their status, chunks embedded so far and error, and whether it can be retried
    (``retryable``, ``retry_files``; else ``retry_note`` says why); ``counts`` per status
    over every job."""
    if status is not None and status not in JOB_STATES:
        raise APIError(
            422,
            f"status must be one of {', '.join(JOB_STATES)}; got {status!r}",
            code="invalid_request",
            param="status",
        )
    queue = service_of(request).jobs

    def run() -> dict[str, Any]:
        jobs = queue.recent(status, limit, collection)
        retried = queue.retried_by()
        return {
            "object": "list",
            "data": [job_json(j, retried) for j in jobs],
            "counts": queue.counts(),
        }

    return JSONResponse(await run_in_threadpool(guarded, run))


@router.post("/jobs/{job_id}/retry", status_code=202)
async def admin_retry_job(job_id: str, request: Request, key: AdminKey) -> JSONResponse:
    """A new job for the files of a finished job that failed (or that a failed job never
    reached), read from the uploads the server kept: 202 with the new job (its
    ``retry_of`` names this one). 404 ``job_not_found``; 409 ``not_retryable`` with the
    reason (still running, nothing failed, or the uploads are gone)."""
    queue = service_of(request).jobs

    def run() -> Job:
        try:
            return queue.retry(job_id)
        except NotFound as exc:
            raise APIError(404, str(exc), code="job_not_found") from None
        except NotRetryable as exc:
            raise APIError(409, str(exc), code="not_retryable") from None

    job = await run_in_threadpool(guarded, run)
    return JSONResponse(job.as_json(), status_code=202)
