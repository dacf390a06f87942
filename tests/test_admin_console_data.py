"""The operator console's Collections (with its document viewer) and Jobs views: their
/v1/admin/... endpoints over HTTP, the store methods behind them on SQLite and PostgreSQL,
and the /admin page in headless Chromium against a real server.

The data is made here: documents uploaded through ``POST /v1/collections/{c}/documents``
in a job with a corrupt PDF (its failure and reason are what the Jobs view shows), a
document of a connector's kind (a URL source) that cannot be re-ingested, and a rated
answer (``POST /v1/feedback``) whose citation names a chunk: what the viewer shows as
"cited by". Screenshots land in test-artifacts/console-data/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import console_helpers as helpers
from citewise import Workspace
from citewise.keys import create_key
from citewise.server import admin_data_routes, create_app
from citewise.sources import text_item
from citewise.workspace import init_workspace
from conftest import LiveServer, new_database

pytestmark = pytest.mark.slow  # a real server (and a browser)

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "console-data"
COLLECTION = "handbook"
GOOD = {
    "greenhouse.md": b"# Greenhouse\n\nThe greenhouse fans start at 31 degrees.\n\n"
    b"## Winter\n\nIn winter the heaters keep the greenhouse above 8 degrees.\n",
    "orchard.txt": b"The orchard is watered every Tuesday at dawn.\n",
    "beehives.md": b"# Beehives\n\nThe beehives are inspected every second Friday.\n",
}
# A file name that is also markup: it must reach the page as text.
BROKEN = "scan <img src=x onerror=alert(1)>.pdf"
BROKEN_BYTES = b"%PDF-1.4\nthis is not really a pdf\n%%EOF"
WEB_SOURCE = "https://intranet.example/policies/ladders"
NEW_ENDPOINTS = [
    ("GET", "/v1/admin/collections"),
    ("GET", "/v1/admin/collections/handbook/documents/1"),
    ("POST", "/v1/admin/collections/handbook/documents/1/reingest"),
    ("GET", "/v1/admin/jobs"),
    ("POST", "/v1/admin/jobs/nosuchjob/retry"),
]


class Server(helpers.ConsoleClient):
    workspace: Workspace

    def __init__(self, live: LiveServer, workspace: Workspace, keys: dict[str, str]) -> None:
        super().__init__(live, workspace, keys)
        self.upload_job: dict = {}
        self.cited: dict = {}  # the search hit a rated answer cited

    def upload(self, files: dict[str, bytes], collection: str = COLLECTION) -> dict:
        sent = [("files", (name, data)) for name, data in files.items()]
        response = self.call("POST", f"/v1/collections/{collection}/documents", files=sent)
        assert response.status_code == 202, response.text
        return response.json()

    def wait(self, job_id: str) -> dict:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = self.call("GET", f"/v1/jobs/{job_id}").json()
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never ended")

    def documents(self, collection: str = COLLECTION) -> list[dict]:
        response = self.call("GET", f"/v1/collections/{collection}/documents")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def document_id(self, name: str, collection: str = COLLECTION) -> int:
        (found,) = [d["id"] for d in self.documents(collection) if d["source"].endswith(name)]
        return int(found)


@pytest.fixture(scope="module")
def server(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("console-data")
    shutil.copytree(ingested_template / "ws", root / "ws")
    workspace = Workspace.open(root / "ws")
    keys = {
        name: create_key(workspace.store, name, ["*"], scopes)[0]
        for name, scopes in [
            ("admin", ["admin"]),
            ("reader", ["ask"]),
            ("writer", ["ask", "ingest"]),
        ]
    }
    # A document of a connector's kind (a crawled page): it cannot be re-read alone.
    report = workspace.add_items(
        [text_item(WEB_SOURCE, "Ladder policy", "Ladders are inspected before each use.")],
        COLLECTION,
    )
    assert report.added == 1
    try:
        with LiveServer(create_app(workspace)) as live:
            made = Server(live, workspace, keys)
            job = made.upload({**GOOD, BROKEN: BROKEN_BYTES})
            made.upload_job = made.wait(job["id"])
            # A rated answer citing a chunk of greenhouse.md (as the chat page sends it).
            hit = made.call(
                "POST",
                "/v1/search",
                json={"query": "greenhouse heaters winter", "collections": [COLLECTION]},
            ).json()["data"][0]
            assert hit["source"].endswith("greenhouse.md"), hit
            posted = made.call(
                "POST",
                "/v1/feedback",
                "reader",
                json={
                    "rating": 1,
                    "question": "When do the heaters run?",
                    "answer": "In winter, above 8 degrees. [1]",
                    "citations": [hit | {"quote": "keep the greenhouse above 8 degrees"}],
                },
            )
            assert posted.status_code == 201, posted.text
            made.cited = hit
            yield made
    finally:
        workspace.close()


# -- the API -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), NEW_ENDPOINTS)
def test_every_new_endpoint_needs_an_admin_key(server: Server, method: str, path: str) -> None:
    missing = server.call(method, path, None)
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"]["code"] == "missing_api_key"
    for key in ("reader", "writer"):  # ask, and ask + ingest
        refused = server.call(method, path, key)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "insufficient_scope"


def test_the_new_endpoints_are_in_the_openapi_schema(server: Server) -> None:
    paths = server.call("GET", "/openapi.json").json()["paths"]
    assert set(paths["/v1/admin/collections"]) == {"get"}
    assert set(paths["/v1/admin/collections/{collection}/documents/{document_id}"]) == {"get"}
    reingest = "/v1/admin/collections/{collection}/documents/{document_id}/reingest"
    assert set(paths[reingest]) == {"post"}
    assert set(paths["/v1/admin/jobs"]) == {"get"}
    assert set(paths["/v1/admin/jobs/{job_id}/retry"]) == {"post"}
    params = {p["name"] for p in paths["/v1/admin/jobs"]["get"]["parameters"]}
    assert params == {"status", "collection", "limit"}


def test_the_upload_job_failed_one_file_with_its_reason(server: Server) -> None:
    files = {f["name"]: f for f in server.upload_job["files"]}
    assert files[BROKEN]["status"] == "failed"
    assert "corrupt PDF" in files[BROKEN]["error"]
    assert {files[n]["status"] for n in GOOD} == {"added"}
    listed = server.call("GET", "/v1/admin/jobs", params={"collection": COLLECTION}).json()
    job = next(j for j in listed["data"] if j["id"] == server.upload_job["id"])
    assert job["failed"] == 1 and job["retryable"] is True
    assert job["retry_files"] == [BROKEN]
    created, finished = (datetime.fromisoformat(job[k]) for k in ("created", "finished"))
    assert created.tzinfo is not None and finished >= created
    assert listed["counts"]["done"] >= 1
    only_failed = server.call("GET", "/v1/admin/jobs", params={"status": "failed"}).json()
    assert all(j["status"] == "failed" for j in only_failed["data"])
    bad = server.call("GET", "/v1/admin/jobs", params={"status": "broken"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "status"


def test_collections_counts_are_the_apis_and_the_stores(server: Server) -> None:
    admin = {c["name"]: c for c in server.call("GET", "/v1/admin/collections").json()["data"]}
    public = {c["name"]: c for c in server.call("GET", "/v1/collections").json()["data"]}
    assert set(admin) == set(public) == {"default", COLLECTION}
    store = server.workspace.store
    for name, entry in admin.items():
        assert (entry["documents"], entry["chunks"], entry["embedder"]) == (
            public[name]["documents"],
            public[name]["chunks"],
            public[name]["embedder"],
        )
        documents, chunks, tokens = store.counts(store.collection(name).id)
        assert (entry["documents"], entry["chunks"], entry["tokens"]) == (documents, chunks, tokens)
        assert sum(s["documents"] for s in entry["sources"]) == documents
        assert sum(s["chunks"] for s in entry["sources"]) == chunks
    handbook = admin[COLLECTION]
    kinds = {s["kind"]: s for s in handbook["sources"]}
    assert set(kinds) == {"file", "https"}
    assert kinds["https"]["documents"] == 1 and kinds["file"]["documents"] == len(GOOD)
    assert kinds["file"]["bytes"] == sum(len(b) for b in GOOD.values()) == handbook["bytes"]
    # The last sync is the upload's run: the corrupt PDF failed in it.
    assert kinds["file"]["status"] == "failures" and kinds["file"]["failed"] == 1
    (failure,) = handbook["last_sync"]["failures"]
    assert failure["source"].endswith(BROKEN) and "corrupt PDF" in failure["reason"]
    assert not failure["source"].startswith("/")  # no server path
    assert handbook["last_sync"]["counts"]["added"] == len(GOOD)


def test_a_document_shows_its_chunks_and_the_rated_answers_that_cited_them(
    server: Server,
) -> None:
    cited = server.cited
    body = server.call(
        "GET", f"/v1/admin/collections/{COLLECTION}/documents/{cited['document_id']}"
    ).json()
    text = server.call(
        "GET", f"/v1/collections/{COLLECTION}/documents/{cited['document_id']}"
    ).json()["text"]
    assert body["source"].endswith("greenhouse.md") and body["kind"] == "file"
    assert len(body["chunk_list"]) == body["chunks"] >= 1
    for chunk in body["chunk_list"]:
        assert chunk["text"] == text[chunk["start"] : chunk["end"]]
    by_id = {c["id"]: c for c in body["chunk_list"]}
    (seen,) = by_id[cited["chunk_id"]]["cited_by"]
    assert (seen["rating"], seen["question"], seen["key"]) == (
        1,
        "When do the heaters run?",
        "reader",
    )
    assert seen["quote"] == "keep the greenhouse above 8 degrees"
    others = [c for c in body["chunk_list"] if c["id"] != cited["chunk_id"]]
    assert all(c["cited_by"] == [] for c in others)
    assert body["citations_recorded"] == "feedback" and "rated" in body["citations_note"]
    assert body["reingest"] == {"possible": True, "reason": None}
    missing = server.call("GET", f"/v1/admin/collections/{COLLECTION}/documents/999999")
    assert missing.status_code == 404


def test_reingest_reparses_a_file_and_refuses_a_connectors_document(server: Server) -> None:
    document_id = server.document_id("orchard.txt")
    before = server.call("GET", f"/v1/collections/{COLLECTION}/documents/{document_id}").json()
    response = server.call(
        "POST", f"/v1/admin/collections/{COLLECTION}/documents/{document_id}/reingest"
    )
    assert response.status_code == 202, response.text
    job = server.wait(response.json()["id"])
    # Unchanged content, parsed and stored again all the same: "updated", not "unchanged".
    assert [(f["name"].endswith("orchard.txt"), f["status"]) for f in job["files"]] == [
        (True, "updated")
    ]
    after = server.call("GET", f"/v1/collections/{COLLECTION}/documents/{document_id}").json()
    assert after["id"] == document_id and after["updated_at"] > before["updated_at"]
    web = server.document_id(WEB_SOURCE)
    viewed = server.call("GET", f"/v1/admin/collections/{COLLECTION}/documents/{web}").json()
    assert viewed["reingest"]["possible"] is False and "https" in viewed["reingest"]["reason"]
    refused = server.call("POST", f"/v1/admin/collections/{COLLECTION}/documents/{web}/reingest")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_reingestable"


def test_retry_runs_only_the_failed_file_and_says_why_when_it_cannot(server: Server) -> None:
    job = server.upload({"cellar.md": b"# Cellar\n\nThe cellar stays at 12 degrees.\n"})
    server.wait(job["id"])
    nothing = server.call("POST", f"/v1/admin/jobs/{job['id']}/retry")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "not_retryable"
    assert "Nothing to retry" in nothing.json()["error"]["message"]
    unknown = server.call("POST", "/v1/admin/jobs/nosuchjob/retry")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"
    # A job whose failed upload is gone from the server cannot be retried: it says so.
    failing = server.wait(server.upload({"lost.pdf": BROKEN_BYTES})["id"])
    assert failing["files"][0]["status"] == "failed"
    (server.workspace.path / "uploads" / COLLECTION / "lost.pdf").unlink()
    gone = server.call("POST", f"/v1/admin/jobs/{failing['id']}/retry")
    assert gone.status_code == 409 and "upload the files again" in gone.json()["error"]["message"]
    listed = server.call("GET", "/v1/admin/jobs").json()["data"]
    entry = next(j for j in listed if j["id"] == failing["id"])
    assert entry["retryable"] is False and "lost.pdf" in entry["retry_note"]


def test_store_methods_behind_the_views(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """source_kinds, jobs and mark_document_stale on both backends: the same answers."""
    seen = {}
    for backend in ("sqlite", "postgresql"):
        store_url = (
            new_database(request.getfixturevalue("postgres")) if backend == "postgresql" else ""
        )
        directory = init_workspace(tmp_path / backend, store=store_url)
        with Workspace.open(directory) as ws:
            folder = tmp_path / f"{backend}-files"
            folder.mkdir()
            (folder / "a.md").write_text("# A\n\nAlpha text.\n")
            (folder / "b.txt").write_text("Beta text.\n")
            ws.ingest([folder], "c")
            ws.add_items([text_item("slack://T1/C1/2026-01-01", "Chat", "Hello there.")], "c")
            # Added by an id (a BEIR corpus, add_items): neither a file nor a connector's.
            # A Windows path and a UNC share are files, as source_paths.is_server_path says.
            ws.add_items(
                [
                    text_item("doc-17", "By id", "Gamma text."),
                    text_item("C:\\docs\\d.txt", "Windows", "Delta text."),
                    text_item("\\\\share\\e.txt", "Share", "Epsilon text."),
                ],
                "c",
            )
            store = ws.store
            collection = store.collection("c")
            kinds = store.source_kinds(collection.id)
            assert [k.kind for k in kinds] == ["file", "item", "slack"]
            assert [k.documents for k in kinds] == [4, 1, 1]
            assert [admin_data_routes.source_kind(s) for s in ("doc-17", "C:\\d", "/x")] == [
                "item",
                "file",
                "file",
            ]
            assert kinds[0].bytes == len("# A\n\nAlpha text.\n") + len("Beta text.\n")
            assert sum(k.chunks for k in kinds) == store.counts(collection.id)[1]
            for n, status in enumerate(["queued", "done", "queued"]):
                store.create_job(f"job{n}", "c" if n < 2 else "d", {"n": n})
                if status == "done":
                    store.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (f"job{n}",))
            assert [j.id for j in store.jobs()] == ["job2", "job1", "job0"]
            assert [j.id for j in store.jobs("queued")] == ["job2", "job0"]
            assert [j.id for j in store.jobs(collection="c", limit=1)] == ["job1"]
            document_id = store.sources(collection.id)[str((folder / "a.md").resolve())]
            store.mark_document_stale(document_id)
            assert ws.ingest([folder], "c").updated == 1  # parsed again; b.txt unchanged
            seen[backend] = [(k.kind, k.documents, k.chunks, k.bytes) for k in kinds]
    assert seen["sqlite"] == seen["postgresql"]


# -- the page ------------------------------------------------------------------------------


@pytest.fixture
def page(browser, server: Server):
    yield from helpers.checked_page(browser)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, server: Server, view: str) -> None:
    helpers.sign_in(page, server.url, server.keys["admin"], view)
    page.wait_for_selector(f"#view-{view}:not([hidden])")


def card(page, collection: str):
    return page.locator(f".collection[data-collection='{collection}']")


def open_document(page, collection: str, document_id: int) -> None:
    card(page, collection).get_by_role("button", name=f"Show documents of {collection}").click()
    page.locator(f"#documents-table tbody tr[data-id='{document_id}'] button:text('View')").click()
    page.wait_for_selector(f"#document-viewer[data-id='{document_id}']:not([hidden])")


def test_collections_view_shows_the_apis_counts_and_the_document_viewer(
    page, server: Server
) -> None:
    sign_in(page, server, "collections")
    page.wait_for_selector(f".collection[data-collection='{COLLECTION}'] dd")
    api = server.call("GET", "/v1/admin/collections").json()["data"]
    public = {c["name"]: c for c in server.call("GET", "/v1/collections").json()["data"]}
    assert page.locator(".collection").count() == len(api) == len(public)
    for entry in api:
        shown = card(page, entry["name"])
        for name in ("documents", "chunks", "tokens"):
            text = shown.locator(f"dd[data-field={name}]").inner_text()
            assert text == f"{entry[name]:,}", (entry["name"], name, text)
        assert shown.locator("dd[data-field=documents]").inner_text() == (
            f"{public[entry['name']]['documents']:,}"
        )
        assert entry["embedder"] in shown.locator("dd[data-field=embedder]").inner_text()
    handbook = card(page, COLLECTION)
    entry = next(c for c in api if c["name"] == COLLECTION)
    for source in entry["sources"]:
        row = handbook.locator(f"tr[data-kind='{source['kind']}']")
        expected = f"{source['failed']} failed" if source["failed"] else "ok"
        assert row.locator("td[data-col=status]").inner_text() == expected
        assert row.locator("td[data-col=documents]").inner_text() == f"{source['documents']:,}"
    # The last sync's failures (an upload of a corrupt PDF by the tests before), as text.
    failures = entry["last_sync"]["failures"]
    assert failures and handbook.locator(".failures li").count() == len(failures)
    shown_failures = handbook.locator(".failures").inner_text()
    for failure in failures:
        assert f"{failure['source']}: {failure['reason']}" in shown_failures
    # The viewer: every chunk, and the rated answer under the chunk it cited.
    cited = server.cited
    detail = server.call(
        "GET", f"/v1/admin/collections/{COLLECTION}/documents/{cited['document_id']}"
    ).json()
    open_document(page, COLLECTION, cited["document_id"])
    listed = page.locator("#documents-table tbody tr")
    assert listed.count() == len(server.documents())
    chunks = page.locator("#viewer-chunks li.chunk")
    assert chunks.count() == len(detail["chunk_list"]) >= 1
    with_citation = page.locator(f"#viewer-chunks li[data-chunk-id='{cited['chunk_id']}']")
    assert "“When do the heaters run?”" in with_citation.locator(".cited-by").inner_text()
    assert with_citation.locator(".cited-by").get_attribute("title") == (
        "keep the greenhouse above 8 degrees"
    )
    first = detail["chunk_list"][0]
    assert page.locator(".chunk-text").first.inner_text().strip() == first["text"].strip()
    assert "rated" in page.inner_text("#viewer-citations-note")
    assert page.is_enabled("#viewer-reingest")
    shot(page, "01-collections-viewer")
    # A connector's document cannot be re-ingested here, and the viewer says why.
    web = server.document_id(WEB_SOURCE)
    page.locator(f"#documents-table tbody tr[data-id='{web}'] button:text('View')").click()
    page.wait_for_selector(f"#document-viewer[data-id='{web}']")
    assert page.is_disabled("#viewer-reingest")
    assert "https source" in page.inner_text("#viewer-reingest-note")


def test_reingesting_in_the_page_queues_a_job_the_jobs_view_shows(page, server: Server) -> None:
    document_id = server.document_id("beehives.md")
    sign_in(page, server, "collections")
    page.wait_for_selector(f".collection[data-collection='{COLLECTION}'] dd")
    open_document(page, COLLECTION, document_id)
    page.click("#viewer-reingest")
    page.wait_for_selector("#viewer-result:has-text('Re-ingest queued as job')")
    job_id = page.inner_text("#viewer-result").split("job ")[1].split(":")[0]
    assert server.wait(job_id)["files"][0]["status"] == "updated"
    page.click("#viewer-result a[href='#jobs']")
    job = page.locator(f".job[data-job='{job_id}']")
    job.wait_for()
    page.wait_for_selector(f".job[data-job='{job_id}'][data-status=done]")
    assert job.locator("tbody tr td[data-col=status]").inner_text() == "updated"


def test_deleting_a_document_in_the_page_removes_it(page, server: Server) -> None:
    job = server.wait(
        server.upload({"shed.md": b"# Shed\n\nThe shed key hangs by the door.\n"})["id"]
    )
    assert job["files"][0]["status"] == "added"
    document_id = server.document_id("shed.md")
    before = len(server.documents())
    sign_in(page, server, "collections")
    page.wait_for_selector(f".collection[data-collection='{COLLECTION}'] dd")
    card(page, COLLECTION).get_by_role("button", name=f"Show documents of {COLLECTION}").click()
    row = page.locator(f"#documents-table tbody tr[data-id='{document_id}']")
    messages: list[str] = []

    def accept(dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name="Delete document Shed").click()
    row.wait_for(state="detached")
    page.wait_for_selector("#documents-status:has-text('Deleted Shed.')")
    assert messages and "Delete document Shed" in messages[0]
    gone = server.call("GET", f"/v1/collections/{COLLECTION}/documents/{document_id}")
    assert gone.status_code == 404
    assert len(server.documents()) == before - 1
    assert page.locator("#documents-table tbody tr").count() == before - 1
    entry = next(
        c
        for c in server.call("GET", "/v1/admin/collections").json()["data"]
        if c["name"] == COLLECTION
    )
    assert card(page, COLLECTION).locator("dd[data-field=documents]").inner_text() == (
        f"{entry['documents']:,}"
    )


def test_jobs_view_shows_the_failure_new_uploads_live_and_retries(page, server: Server) -> None:
    sign_in(page, server, "jobs")
    upload = page.locator(f".job[data-job='{server.upload_job['id']}']")
    upload.wait_for()
    broken = upload.locator("tbody tr[data-status=failed]")
    assert broken.locator("th").inner_text() == BROKEN  # the name as text
    assert "corrupt PDF" in broken.locator("td[data-col=error]").inner_text()
    assert page.locator("#view-jobs img").count() == 0
    assert upload.locator("dd[data-field=failed]").inner_text() == "1"
    for name in GOOD:
        assert upload.locator(f"tbody tr[data-file='{name}'] td[data-col=status]").inner_text() == (
            "added"
        )
    # An upload made while the view is open appears, and ends, without a reload.
    job = server.upload({"pond.md": b"# Pond\n\nThe pond pump runs from April.\n"})
    page.wait_for_selector(f".job[data-job='{job['id']}'][data-status=done]")
    assert (
        page.locator(f".job[data-job='{job['id']}'] tbody tr").get_attribute("data-status")
        == "added"
    )
    shot(page, "02-jobs")
    # Retry: only the failed file runs again (and fails again, with its reason).
    upload.get_by_role(
        "button", name=f"Retry 1 failed file of job {server.upload_job['id']}"
    ).click()
    page.wait_for_selector("#jobs-result:has-text('queued again as job')")
    retry_id = page.inner_text("#jobs-result").rsplit("job ", 1)[1].rstrip(".")
    retried = server.wait(retry_id)
    assert retried["retry_of"] == server.upload_job["id"]
    assert [(f["name"], f["status"]) for f in retried["files"]] == [(BROKEN, "failed")]
    retry_card = page.locator(f".job[data-job='{retry_id}'][data-status=done]")
    retry_card.wait_for()
    assert "corrupt PDF" in retry_card.locator("td[data-col=error]").inner_text()
    assert f"A retry of job {server.upload_job['id']}" in retry_card.inner_text()
    page.wait_for_selector(f".job[data-job='{server.upload_job['id']}']:has-text('Retried as job')")


def test_empty_states_say_what_to_do_next(browser, tmp_path: Path) -> None:
    with helpers.empty_console(browser, tmp_path / "empty", "collections") as (page, _):
        page.wait_for_selector("#collections-empty:not([hidden])")
        assert "citewise ingest" in page.inner_text("#collections-empty")
        page.click("#views-nav a[data-view=jobs]")
        page.wait_for_selector("#jobs-empty:not([hidden])")
        assert "/v1/collections/NAME/documents" in page.inner_text("#jobs-empty")


def test_axe_finds_no_serious_violations_in_the_new_views(browser, server: Server) -> None:
    # axe is injected as an inline script: only this context bypasses the page's CSP.
    with helpers.browser_page(browser, bypass_csp=True) as (page, _):
        problems: list[str] = []
        sign_in(page, server, "collections")
        page.wait_for_selector(f".collection[data-collection='{COLLECTION}'] dd")
        problems += helpers.axe_problems(page, "/admin#collections")
        open_document(page, COLLECTION, server.cited["document_id"])
        problems += helpers.axe_problems(page, "/admin#collections (a document open)")
        page.click("#views-nav a[data-view=jobs]")
        page.wait_for_selector(f".job[data-job='{server.upload_job['id']}']")
        problems += helpers.axe_problems(page, "/admin#jobs")
    assert not problems, "\n".join(problems)


def test_readable_at_phone_width_and_by_keyboard(browser, server: Server) -> None:
    with helpers.browser_page(browser, 390, 844) as (page, _):
        sign_in(page, server, "usage")
        # The new views are links in the navigation, reached with the keyboard.
        page.focus("#views-nav a[data-view=collections]")
        page.keyboard.press("Enter")
        page.wait_for_selector(f".collection[data-collection='{COLLECTION}'] dd")
        assert page.get_attribute("#views-nav a[data-view=collections]", "aria-current") == "page"
        show = card(page, COLLECTION).get_by_role("button", name=f"Show documents of {COLLECTION}")
        show.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#documents-table tbody tr")
        assert page.evaluate("document.activeElement.id") == "documents-title"
        view = page.locator(
            f"#documents-table tbody tr[data-id='{server.cited['document_id']}'] button:text('View')"
        )
        view.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#document-viewer:not([hidden]) li.chunk")
        assert page.evaluate("document.activeElement.id") == "viewer-title"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, ("collections", width)
        shot(page, "03-phone-collections")
        assert helpers.unlabelled_controls(page) == []
        page.focus("#views-nav a[data-view=jobs]")
        page.keyboard.press("Enter")
        page.wait_for_selector(f".job[data-job='{server.upload_job['id']}']")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, ("jobs", width)
        shot(page, "04-phone-jobs")
