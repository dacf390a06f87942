"""citewise's own endpoints: search, collections, documents (upload, list, get, delete),
ingest jobs, answer feedback and the usage ledger."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..access import readable_collection
from ..keys import ApiKey
from ..ledger import GROUPS, iso
from ..names import COLLECTION_NAME
from .auth import AskKey, IngestKey, service_of
from .errors import APIError, guarded
from .openai_routes import hit_json, public_metadata
from .schemas import FeedbackRequest, SearchRequest
from .service import Service, distinct_names, safe_filename

router = APIRouter()

# A document's (or an evaluation run's) id as the stores keep it, a 64-bit integer: a
# larger one is a 422, not a 500 (SQLite cannot bind it), and no stored id is below 1.
MAX_STORED_ID = 2**63 - 1
StoredId = Annotated[int, PathParam(ge=1, le=MAX_STORED_ID)]


@router.post("/v1/search")
async def search(body: SearchRequest, request: Request, key: AskKey) -> JSONResponse:
    service = service_of(request)
    where = dict(body.where) if body.where else None

    def run() -> list[dict[str, Any]]:  # in a worker thread: the database is read here
        who = service.caller(key)
        collections = service.scope(who, body.collections)
        hits = service.workspace.search(body.query, body.k, collections, body.mode, where, who)
        return [hit_json(h, n, service.shown) for n, h in enumerate(hits, start=1)]

    data = await run_in_threadpool(guarded, run)
    return JSONResponse({"object": "list", "query": body.query, "data": data})


@router.get("/v1/collections")
async def collections(request: Request, key: AskKey) -> JSONResponse:
    service = service_of(request)

    def run() -> list[dict[str, Any]]:  # in a worker thread: the database is read here
        who = service.caller(key)
        status = service.workspace.status()
        data = []
        for c in status.collections:
            if not key.allows_collection(c.name):
                continue
            # A user's key counts only what its user may read: a count taking in the
            # documents it may not would tell it they exist.
            documents, chunks = (
                (c.documents, c.chunks)
                if who.user is None
                else service.workspace.readable_counts(c.name, who)
            )
            data.append(
                {
                    "object": "collection",
                    "name": c.name,
                    "documents": documents,
                    "chunks": chunks,
                    "embedder": c.embedder,
                }
            )
        return data

    data = await run_in_threadpool(run)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "writable": "ingest" in key.scopes or "admin" in key.scopes,
            "key": key.name,
        }
    )


@router.post("/v1/collections/{collection}/documents", status_code=202)
async def upload(
    collection: str,
    files: list[UploadFile],
    request: Request,
    key: IngestKey,
) -> JSONResponse:
    service = service_of(request)
    name = service.writable_collection(key, collection)
    if not files:
        raise APIError(422, "Send one or more files in the multipart field 'files'", param="files")
    limit = service.settings.max_upload_mb * 1024 * 1024
    # The job lives in the store: with the store down, refuse before a file is kept.
    await run_in_threadpool(service.workspace.store.schema_version)
    existing = await run_in_threadpool(lambda: {p.name for p in service.upload_dir(name).iterdir()})
    saved = await run_in_threadpool(_save_uploads, service, name, files, limit)
    job = await run_in_threadpool(_submit, service, name, saved, existing)
    return JSONResponse(job.as_json(), status_code=202)


def _submit(
    service: Service, collection: str, saved: list[tuple[str, Path]], existing: set[str]
) -> Any:
    """The upload's job; if the store fails now, the files this upload added are removed,
    so a refused upload (503) leaves nothing behind that no job will ever ingest. (A file
    it replaced stays: it is an earlier document's source, or an earlier job's input.)"""
    try:
        return service.jobs.submit(collection, saved)
    except Exception:
        for name, path in saved:
            if name not in existing:
                path.unlink(missing_ok=True)
        raise


def _save_uploads(
    service: Service, collection: str, files: list[UploadFile], limit: int
) -> list[tuple[str, Path]]:
    names = [safe_filename(f.filename) for f in files]
    for raw, clean in zip(files, names, strict=True):
        if not clean:
            raise APIError(422, f"Unusable file name {raw.filename!r}", param="files")
    names = distinct_names(names)
    directory = service.upload_dir(collection)
    saved: list[tuple[str, Path]] = []
    total = 0
    for upload, name in zip(files, names, strict=True):
        target = directory / name
        partial = target.with_name(target.name + ".part")
        with partial.open("wb") as out:
            while block := upload.file.read(1 << 20):
                total += len(block)
                if total > limit:
                    out.close()
                    partial.unlink(missing_ok=True)
                    raise APIError(
                        413,
                        f"Upload larger than {limit // (1024 * 1024)} MB",
                        code="upload_too_large",
                    )
                out.write(block)
        partial.replace(target)  # a re-upload replaces the file; ingest sees it changed
        saved.append((name, target))
    return saved


@router.get("/v1/collections/{collection}/documents")
async def list_documents(
    collection: str,
    request: Request,
    key: AskKey,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> JSONResponse:
    service = service_of(request)
    target = await run_in_threadpool(_readable, service, key, collection)
    caller = await run_in_threadpool(service.caller, key)
    admin = key.allows_scope("admin")
    data = await run_in_threadpool(
        lambda: [
            _record_json(r, service, admin)
            for r in service.workspace.documents(target.name, caller, limit, offset)
        ]
    )
    return JSONResponse({"object": "list", "data": data})


@router.get("/v1/collections/{collection}/documents/{document_id}")
async def get_document(
    collection: str,
    document_id: StoredId,
    request: Request,
    key: AskKey,
    around: int | None = Query(None, ge=0),
    window: int = Query(4000, ge=100, le=200_000),
) -> JSONResponse:
    """A document and its text — or, with ``around``, the ``window`` characters around an offset
    (how the web UI shows a cited span in context)."""
    service = service_of(request)
    _, record = await run_in_threadpool(_document, service, key, collection, document_id)
    text = await run_in_threadpool(service.workspace.store.document_text, document_id)
    length, offset = len(text), 0
    if around is not None:
        offset = max(0, min(around, length) - window // 2)
        text = text[offset : offset + window]
    admin = key.allows_scope("admin")
    body = (await run_in_threadpool(_record_json, record, service, admin)) | {
        "text": text,
        "text_offset": offset,
        "length": length,
    }
    return JSONResponse(body)


@router.delete("/v1/collections/{collection}/documents/{document_id}")
async def delete_document(
    collection: str, document_id: StoredId, request: Request, key: IngestKey
) -> JSONResponse:
    service = service_of(request)
    target, record = await run_in_threadpool(_document, service, key, collection, document_id)
    await run_in_threadpool(service.workspace.store.delete_documents, target.id, [document_id])
    # Only uploads are deleted with their document, and only from inside the upload folder.
    upload = (service.uploads / collection).resolve()
    source = Path(record.source).resolve()
    if COLLECTION_NAME.fullmatch(collection) and source.is_relative_to(upload) and source != upload:
        source.unlink(missing_ok=True)
    return JSONResponse({"id": document_id, "object": "document.deleted", "deleted": True})


@router.get("/v1/jobs/{job_id}")
async def job_status(job_id: str, request: Request, key: IngestKey) -> JSONResponse:
    job = service_of(request).jobs.get(job_id)
    if job is None or not key.allows_collection(job.collection):
        raise APIError(404, f"No ingest job {job_id}", code="job_not_found")
    return JSONResponse(job.as_json())


@router.get("/v1/usage")
async def usage(
    request: Request,
    key: AskKey,
    group_by: str = Query("key"),
    since: str | None = None,
    calls: bool = False,
    key_name: str | None = Query(None, alias="key"),
) -> JSONResponse:
    """The usage ledger: totals grouped by key, model, day, assistant or purpose, or every
    call with ``calls=true``. An admin key reads everyone's; another key only its own."""
    if group_by not in GROUPS:
        raise APIError(
            422,
            f"group_by must be one of {', '.join(GROUPS)}; got {group_by!r}",
            code="invalid_request",
            param="group_by",
        )
    since = _moment(since)
    if not key.allows_scope("admin"):
        if key_name not in (None, key.name):
            raise APIError(
                403,
                "This key may read only its own usage",
                type="permission_error",
                code="insufficient_scope",
                param="key",
            )
        key_name = key.name
    ledger = service_of(request).workspace.ledger
    if calls:
        rows = await run_in_threadpool(ledger.rows, since, key_name)
        return JSONResponse({"object": "list", "data": [asdict(r) for r in rows]})
    summary = await run_in_threadpool(guarded, lambda: ledger.summary(group_by, since, key_name))
    return JSONResponse({"object": "list", "group_by": group_by, "data": summary})


@router.post("/v1/feedback", status_code=201)
async def feedback(body: FeedbackRequest, request: Request, key: AskKey) -> JSONResponse:
    service = service_of(request)
    feedback_id = await run_in_threadpool(
        service.workspace.store.add_feedback,
        key.name,
        body.rating,
        body.question,
        body.answer,
        body.citations,
        body.model,
        body.comment,
    )
    return JSONResponse({"id": feedback_id, "object": "feedback"}, status_code=201)


def _moment(since: str | None) -> str | None:
    """``since`` as the ledger stores times (ISO 8601, UTC), or a 422 naming it: a time
    the server cannot read would otherwise filter by text and answer with nothing."""
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since.strip())
    except ValueError:
        raise APIError(
            422,
            f"since must be an ISO 8601 date or time (e.g. 2026-12-01 or "
            f"2026-12-01T08:00:00Z); got {since!r}",
            code="invalid_request",
            param="since",
        ) from None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))


def _readable(service: Service, key: ApiKey, collection: str) -> Any:
    return readable_collection(key, service.workspace.store, collection)


def _document(service: Service, key: ApiKey, collection: str, document_id: int) -> tuple[Any, Any]:
    """(collection, document record), or the 403/404 the caller should get: a document
    the key's user may not read is not found."""
    target = _readable(service, key, collection)
    return target, service.workspace.document(collection, document_id, service.caller(key))


def _record_json(record: Any, service: Service, admin: bool = False) -> dict[str, Any]:
    """A document as callers see it: no server paths (source_paths.py); for an admin key,
    who may read it (``access``: ``open`` or the identities it is restricted to). Reads
    the store."""
    body = {"object": "document", **asdict(record)}
    body["source"] = service.shown.shown(record.source, record.collection)
    body["metadata"] = public_metadata(
        record.metadata, service.shown, record.source, record.collection
    )
    if admin:
        access = service.workspace.store.document_access(record.id)
        body["access"] = list(access.principals) if access.restricted else "open"
    return body
