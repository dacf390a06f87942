"""The knowledge base as an MCP server (the official MCP Python SDK: ``citewise[mcp]``).

Four read-only tools, the same over stdio (``citewise mcp``: Claude Desktop, Cursor,
VS Code) and over Streamable HTTP (``/mcp`` on ``citewise serve``, server/mcp_http.py):

* ``search(query)``: passages in the shape ChatGPT's connectors read,
  ``{"results": [{"id", "title", "url", "text", ...}]}``, each with where it sits
  (location, page, span, seconds);
* ``fetch(id)``: a whole document by the id ``search`` gave (``docs/12#40`` or ``docs/12``);
* ``ask(question, collections)``: an answer citing numbered sources, with their quotes;
* ``list_collections()``: the collections the caller may read.

Who may read what is :mod:`citewise.access`'s to say, as for the HTTP API: the caller is an
API key's record (:data:`~citewise.keys.OPEN_ACCESS` for the workspace's owner over stdio),
asked for on every call, so a revoked key stops at once. A failure is a tool error with
citewise's one-line message: no traceback, no server path, no credential of a URL.
Sources are shown as the HTTP API shows them (server/source_paths.py): never a path of the
server's file system; a document without a public URL gets a ``citewise://`` link.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from .access import Caller, readable_collections, require_scope
from .answering import AnswerStream
from .documents import Answer, Citation, Hit, Usage
from .errors import CitewiseError, InvalidInput, NotFound
from .names import COLLECTION_NAME
from .secrets import redact_url
from .server.openai_routes import citation_json, hit_json, public_metadata
from .server.source_paths import SourcePaths
from .workspace import Workspace

SCHEME = "citewise://"
SEARCH_RESULTS = 10  # passages one search returns
MAX_QUERY_CHARS = 8000  # as /v1/search takes
# A passage's id (collection/document#chunk) or a document's (collection/document), with or
# without the citewise:// of the links this server gives.
_ID = re.compile(
    rf"(?:{re.escape(SCHEME)})?(?P<collection>{COLLECTION_NAME.pattern})"
    r"/(?P<document>\d{1,18})(?:#(?P<chunk>\d{1,18}))?"
)
# The transport's request (a Starlette request over HTTP, None over stdio) -> the caller.
CallerOf = Callable[[Any], Caller]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
INSTRUCTIONS = (
    "citewise searches the user's own documents. Use `search` to find passages, `fetch` to "
    "read a whole document by a result's id, and `ask` for an answer that cites its sources "
    "by number; cite the titles and locations you use."
)


# -- what the tools return (their output schemas) ---------------------------------------


class Passage(BaseModel):
    id: str = Field(description="The passage's id: `fetch` opens its document.")
    title: str
    url: str = Field(description="The source's public URL, else a citewise:// link.")
    text: str
    collection: str
    document_id: int
    chunk_id: int
    source: str = Field(description="The source as the server shows it (never a server path).")
    location: str = Field(description="Where the passage sits: page, headings, characters.")
    page: int | None
    heading_path: list[str]
    start: int = Field(description="First character of the passage in the document's text.")
    end: int = Field(description="Character after the passage's last.")
    start_seconds: int | None = Field(description="A recording's passage: where it starts.")
    end_seconds: int | None
    score: float
    metadata: dict[str, Any]


class SearchResults(BaseModel):
    results: list[Passage]


class FetchedDocument(BaseModel):
    id: str
    title: str
    text: str = Field(description="The document's whole text.")
    url: str
    metadata: dict[str, Any]


class Source(BaseModel):
    number: int = Field(description="The [n] the answer cites it by.")
    id: str
    title: str
    url: str
    source: str
    location: str
    page: int | None
    start: int
    end: int
    start_seconds: int | None
    end_seconds: int | None
    quote: str = Field(description="The words of the passage that support the answer.")


class CitedAnswer(BaseModel):
    answer: str
    citations: list[Source]
    refused: bool = Field(description="No passage was relevant enough to answer from.")
    warnings: list[str]
    model: str


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    embedder: str


class Collections(BaseModel):
    collections: list[CollectionInfo]


# -- the server --------------------------------------------------------------------------


def create_server(
    workspace: Workspace,
    caller_of: CallerOf,
    *,
    shown: SourcePaths | None = None,
    admit: Callable[[Caller], None] | None = None,
    spent: Callable[[Caller, Answer], None] | None = None,
) -> MCPServer[Any]:
    """An MCP server over ``workspace``. ``caller_of`` names the caller of each call (from
    the HTTP request, or the one stdio serves); ``admit`` may refuse a call (the server's
    rate limits) and ``spent`` hears of each answer's tokens. ``shown`` is the server's
    :class:`SourcePaths` (its cache shared), else one of this workspace's own."""
    root = str(workspace.path.resolve()) + "/"
    paths = shown if shown is not None else SourcePaths(workspace.store, root)
    with _no_logging_setup():
        server: MCPServer[Any] = MCPServer(
            "citewise",
            title="citewise",
            instructions=INSTRUCTIONS,
            version=_version(),
            subscriptions=False,  # nothing to listen to: the tools read, the list never changes
        )

    def caller(ctx: Context[Any, Any]) -> Caller:
        who = caller_of(ctx.request_context.request)
        require_scope(who, "ask")
        if admit is not None:
            admit(who)
        return who

    @server.tool(title="Search the documents", annotations=READ_ONLY)
    def search(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)],
        ctx: Context[Any, Any],
    ) -> SearchResults:
        """Search the knowledge base (keywords and meaning) for the passages that best match
        `query`. Each result has an `id` that `fetch` opens, a title, a URL, the passage's
        text and where it sits in its source (location, page, characters, seconds)."""
        with _tool_errors(root):
            who = caller(ctx)
            if not query.strip():
                raise InvalidInput("query is empty: say what to search for", param="query")
            hits = workspace.search(query, SEARCH_RESULTS, _scope(workspace, who, None), caller=who)
            return SearchResults(results=[_passage(hit, paths) for hit in hits])

    @server.tool(title="Fetch a document", annotations=READ_ONLY)
    def fetch(id: str, ctx: Context[Any, Any]) -> FetchedDocument:
        """The whole document a search result comes from, by the result's `id`
        (collection/document#passage, e.g. `docs/12#40`), with its title, URL and metadata."""
        with _tool_errors(root):
            who = caller(ctx)
            return _fetch(workspace, who, id, paths)

    @server.tool(title="Ask the documents", annotations=READ_ONLY)
    async def ask(
        question: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)],
        ctx: Context[Any, Any],
        collections: list[str] | None = None,
    ) -> Annotated[CallToolResult, CitedAnswer]:
        """Answer `question` from the documents, citing its sources by number ([1], [2]) with
        their titles, locations and the quotes that support it. `collections` limits the
        sources (default: every collection the caller may read)."""

        def start() -> tuple[Caller, AnswerStream]:  # reads the store: in a worker thread
            who = caller(ctx)
            names = _scope(workspace, who, collections)
            return who, workspace.ask_stream(question, names, caller=who)

        with _tool_errors(root):
            who, stream = await anyio.to_thread.run_sync(start)
            charge = None if spent is None else (lambda answer: spent(who, answer))
            try:
                # Abandoned when the client cancels the call (notifications/cancelled, or
                # the HTTP request gone): the generation then stops at its next token
                # instead of holding the model for an answer nobody reads, and the tokens
                # it used are charged as the worker thread stops.
                answer = await anyio.to_thread.run_sync(
                    _whole_answer, stream, charge, abandon_on_cancel=True
                )
            except anyio.get_cancelled_exc_class():
                stream.cancel()
                raise
            result = await anyio.to_thread.run_sync(_cited_answer, answer, paths)
        return CallToolResult(
            content=[TextContent(type="text", text=_answer_text(result))],
            structured_content=result.model_dump(mode="json"),
        )

    @server.tool(title="List the collections", annotations=READ_ONLY)
    def list_collections(ctx: Context[Any, Any]) -> Collections:
        """The collections the caller may read: names, document and passage counts, and the
        embedding model each was built with."""
        with _tool_errors(root):
            who = caller(ctx)
            listed = []
            for record in workspace.store.collections():
                if who.allows_collection(record.name):
                    # A user counts only what it may read: other counts would tell it
                    # that documents it may not read exist.
                    documents, chunks = workspace.readable_counts(record.name, who)
                    listed.append(
                        CollectionInfo(
                            name=record.name,
                            documents=documents,
                            chunks=chunks,
                            embedder=record.embedder,
                        )
                    )
            return Collections(collections=listed)

    return server


def _whole_answer(stream: AnswerStream, charge: Callable[[Answer], None] | None) -> Answer:
    """Every delta of ``stream`` (closing it, which settles the ledger), then its answer.
    ``charge`` hears of the tokens it used when it ends — also when the call was cancelled
    (this thread, abandoned, stops at the next token): the answer made so far or, without
    one, the prompt sent as an estimate. A call that failed is not charged, as on the
    HTTP API."""
    try:
        for _ in stream:
            pass
    finally:
        stream.close()
        if charge is not None and (stream.answer is not None or stream.cancelled):
            charge(stream.answer or prompt_only(stream))
    assert stream.answer is not None
    return stream.answer


def prompt_only(stream: AnswerStream) -> Answer:
    """An answer that never came, charged as the prompt it sent (estimated)."""
    prompt = stream.prompt.prompt_tokens if stream.prompt is not None else 0
    usage = Usage(prompt, 0, estimated=True)
    return Answer(stream.question, "", [], [], None, usage, stream.model.model_id)


def serve_stdio(workspace: Workspace, caller_of: CallerOf) -> None:
    """Serve ``workspace`` over stdin and stdout until the client closes them."""
    server = create_server(workspace, caller_of)
    # The embedder loads while the client connects, not in its first search.
    threading.Thread(
        target=_warm_up, args=(workspace,), name="citewise-warm-up", daemon=True
    ).start()
    server.run("stdio")


# -- the tools' work ---------------------------------------------------------------------


def _scope(workspace: Workspace, who: Caller, requested: Sequence[str] | None) -> list[str]:
    existing = [c.name for c in workspace.store.collections()]
    return readable_collections(who, existing, requested)


def passage_id(hit: Hit) -> str:
    return f"{hit.collection}/{hit.document_id}#{hit.chunk_id}"


def _link(url: str | None, id: str) -> str:
    """The source's public URL (credentials masked), else a citewise:// link to ``id``."""
    return redact_url(url) if url else SCHEME + id


def _passage(hit: Hit, paths: SourcePaths) -> Passage:
    body = hit_json(hit, None, paths)
    identifier = passage_id(hit)
    return Passage(
        id=identifier,
        title=hit.title,
        url=_link(hit.url, identifier),
        text=hit.text,
        collection=hit.collection,
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        source=body["source"],
        location=hit.location,
        page=hit.page,
        heading_path=list(hit.heading_path),
        start=hit.start,
        end=hit.end,
        start_seconds=body["start_seconds"],
        end_seconds=body["end_seconds"],
        score=body["score"],
        metadata=body["metadata"],
    )


def parse_id(text: str) -> tuple[str, int, int | None]:
    """(collection, document id, passage id or None) of an id ``search`` gave."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(
            "fetch takes an id that search returned, such as 'docs/12#40' "
            "(collection/document#passage)",
            param="id",
        )
    chunk = match["chunk"]
    return match["collection"], int(match["document"]), int(chunk) if chunk else None


def _fetch(workspace: Workspace, who: Caller, id: str, paths: SourcePaths) -> FetchedDocument:
    name, document_id, chunk_id = parse_id(id)
    # A document the caller's user may not read is not found, like a missing one.
    record = workspace.document(name, document_id, who)
    metadata: dict[str, Any] = {
        "collection": name,
        "document_id": document_id,
        "source": paths.shown(record.source, name),
        "chunks": record.chunks,
        "updated_at": record.updated_at,
        **public_metadata(record.metadata, paths, record.source, name),
    }
    if chunk_id is not None:
        hit = workspace.store.hits([chunk_id]).get(chunk_id)
        if hit is None or hit.document_id != document_id:
            raise NotFound(f"No passage {chunk_id} in document {document_id}", code="not_found")
        seconds = hit.seconds
        metadata["passage"] = {
            "chunk_id": chunk_id,
            "location": hit.location,
            "page": hit.page,
            "start": hit.start,
            "end": hit.end,
            "start_seconds": seconds[0] if seconds else None,
            "end_seconds": seconds[1] if seconds else None,
        }
    document = f"{name}/{document_id}"
    url = record.metadata.get("url") or (
        record.source if record.source.startswith(("http://", "https://")) else None
    )
    return FetchedDocument(
        id=document if chunk_id is None else f"{document}#{chunk_id}",
        title=record.title,
        text=workspace.store.document_text(document_id),
        url=_link(str(url) if url else None, document),
        metadata=metadata,
    )


def _cited_answer(answer: Answer, paths: SourcePaths) -> CitedAnswer:
    return CitedAnswer(
        answer=answer.text,
        citations=[_source(c, paths) for c in answer.citations],
        refused=answer.refused,
        warnings=list(answer.warnings),
        model=answer.target,
    )


def _source(citation: Citation, paths: SourcePaths) -> Source:
    body = citation_json(citation, paths)
    hit = citation.hit
    identifier = passage_id(hit)
    return Source(
        number=citation.number,
        id=identifier,
        title=hit.title,
        url=_link(hit.url, identifier),
        source=body["source"],
        location=hit.location,
        page=hit.page,
        start=hit.start,
        end=hit.end,
        start_seconds=body["start_seconds"],
        end_seconds=body["end_seconds"],
        quote=citation.quote,
    )


def _answer_text(result: CitedAnswer) -> str:
    """The answer as the model reads it: its text, then each numbered source."""
    lines = [result.answer]
    if result.citations:
        lines += ["", "Sources:"]
        for source in result.citations:
            lines.append(f"[{source.number}] {source.title} ({source.location}) {source.url}")
            if source.quote:
                lines.append(f'    "{source.quote}"')
    return "\n".join(lines)


@contextmanager
def _tool_errors(root: str) -> Iterator[None]:
    """citewise's errors as tool errors: their one-line message, no URL credential, no
    path of the workspace. Anything else the SDK reports as the tool's failure, alone."""
    try:
        yield
    except CitewiseError as exc:
        raise ToolError(public_message(str(exc), root)) from exc


def public_message(text: str, root: str) -> str:
    """``text`` with URL credentials masked and the workspace's path left out."""
    text = redact_url(text)
    return text.replace(root, "").replace(root.rstrip("/"), "the workspace")


@contextmanager
def _no_logging_setup() -> Iterator[None]:
    """MCPServer() configures the root logger when it has no handler (a rich handler at
    INFO); the process's logging is the application's to set, so it finds one here."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        if added:
            root.removeHandler(placeholder)


def _warm_up(workspace: Workspace) -> None:
    try:
        workspace.embedder()
    except Exception:  # the first search reports it
        logging.getLogger(__name__).debug("embedder warm-up failed", exc_info=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("citewise")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return ""
