"""Recordings played from a citation: short-lived signed links, served with range requests.

A browser's ``<audio>`` element cannot send an Authorization header, so the web UI asks —
with its key — for a link to a document's recording. The link names the document, the
key and an expiry, signed with this server process's secret (HMAC-SHA256). Following it
checks the signature and expiry, then that the key is still active and still reads the
collection (a revoked key's links stop on the next request), and serves the file with
Starlette's FileResponse, which answers Range requests: seeking to a cited second fetches
only the bytes the player needs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from ..keys import OPEN_ACCESS, ApiKey, list_keys
from .auth import AskKey, service_of
from .data_routes import StoredId, _document
from .errors import APIError

router = APIRouter()
LINK_SECONDS = 3600


@router.post("/v1/collections/{collection}/documents/{document_id}/media")
async def media_link(
    collection: str, document_id: StoredId, request: Request, key: AskKey
) -> JSONResponse:
    """A link that plays the document's recording for the next hour (for ``<audio src>``)."""
    service = service_of(request)
    _, record = await run_in_threadpool(_document, service, key, collection, document_id)
    if not record.metadata.get("media") or not Path(record.source).is_file():
        raise APIError(
            404,
            f"Document {document_id} in '{collection}' has no recording to play",
            code="media_not_found",
        )
    expires = int(time.time()) + LINK_SECONDS
    # The key's prefix too: a key created later under a revoked key's name (keys.py lets
    # the name be reused) does not bring the revoked key's links back.
    claims = {"c": collection, "d": document_id, "k": key.name, "p": key.prefix, "e": expires}
    return JSONResponse(
        {
            "object": "media_link",
            "expires_at": expires,
            "url": f"/media/{sign(service.media_secret, claims)}",
        }
    )


@router.get("/media/{token}")
async def media(token: str, request: Request) -> FileResponse:
    service = service_of(request)
    claims = verify(service.media_secret, token)
    key = await run_in_threadpool(_active_key, service, claims["k"], claims.get("p"))
    if key is None or not key.allows_collection(claims["c"]):
        raise APIError(
            403,
            "This link's key is revoked or no longer reads the collection",
            type="permission_error",
            code="link_revoked",
        )
    _, record = await run_in_threadpool(_document, service, key, claims["c"], claims["d"])
    path = Path(record.source)
    if not path.is_file():
        raise APIError(404, "The recording is gone", code="media_not_found")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "private, max-age=600"})


def sign(secret: bytes, claims: dict[str, Any]) -> str:
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())}"


def verify(secret: bytes, token: str) -> dict[str, Any]:
    body, _, signature = token.partition(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature.encode(), expected.encode()):
        raise APIError(
            403, "This media link is not valid", type="permission_error", code="invalid_link"
        )
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if claims["e"] < time.time():
        raise APIError(
            403,
            "This media link has expired; open the citation again",
            type="permission_error",
            code="link_expired",
        )
    return claims


def _active_key(service: Any, name: str, prefix: str | None) -> ApiKey | None:
    if not service.auth:
        return OPEN_ACCESS
    keys = list_keys(service.workspace.store)
    return next((k for k in keys if k.name == name and k.prefix == prefix), None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
