"""Background ingestion: uploads are queued and ingested one job at a time.

Ingestion is CPU-bound (parsing, embedding), so one worker thread runs jobs in
order while the server keeps answering. Each job reports per-file progress and
errors; the documents themselves land in SQLite one transaction per file, so a
server stopped mid-job keeps every finished file. When the server starts again, uploads
it saved but had not finished ingesting are picked up (``resume``): a file already
stored is unchanged and costs a stat; a half-written ``.part`` upload is removed.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..connectors import detect_source
from ..ingest import Progress
from ..workspace import Workspace


@dataclass
class FileState:
    name: str
    status: str = "queued"  # queued | added | updated | unchanged | failed | skipped
    chunks: int = 0
    error: str | None = None
    kind: str = "file"  # or the connector that read an uploaded export: slack, notion, …
    documents: dict[str, int] | None = None  # an export's added/updated/… counts


@dataclass
class Job:
    id: str
    collection: str
    files: list[FileState]
    paths: list[Path] = field(repr=False)
    status: str = "queued"  # queued | running | done | failed
    done: int = 0
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("paths")
        body["object"] = "ingest.job"
        body["total"] = len(self.files)
        return body


class JobQueue:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="citewise-ingest", daemon=True)
        self._worker.start()

    def resume(self, uploads: Path) -> list[Job]:
        """A job per collection for uploads a stopped server left unfinished."""
        jobs = []
        if not uploads.is_dir():
            return jobs
        for folder in sorted(p for p in uploads.iterdir() if p.is_dir()):
            for partial in folder.glob("*.part"):
                partial.unlink(missing_ok=True)  # an upload cut off while it was written
            files = [(p.name, p) for p in sorted(folder.iterdir()) if p.is_file()]
            collection = self.workspace.store.collection(folder.name)
            stored = self.workspace.store.sources(collection.id) if collection else {}
            unfinished = [(n, p) for n, p in files if str(p.resolve()) not in stored]
            if unfinished:
                jobs.append(self.submit(folder.name, unfinished))
        return jobs

    def submit(self, collection: str, files: list[tuple[str, Path]]) -> Job:
        job = Job(uuid.uuid4().hex[:16], collection, [FileState(name) for name, _ in files],
                  [path for _, path in files])  # fmt: skip
        with self._lock:
            self.jobs[job.id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [job.status for job in self.jobs.values()]
        return {state: states.count(state) for state in ("queued", "running", "done", "failed")}

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def wait(self, job_id: str, timeout: float = 300) -> Job:
        """Block until a job ends (for the Python API and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None or job.status in ("done", "failed"):
                assert job is not None, f"no job {job_id}"
                return job
            time.sleep(0.05)
        raise TimeoutError(f"ingest job {job_id} still running after {timeout} s")

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run_job(job)

    def _run_job(self, job: Job) -> None:
        job.status = "running"
        # Plain files go in together; an uploaded export (a Slack or Notion zip, a Takeout
        # part, an mbox) goes through its connector and reports its own totals.
        plain, exports = [], []
        for path, state in zip(job.paths, job.files, strict=True):
            kind = detect_source(str(path))
            (plain if kind in ("files", "web") else exports).append((path, state, kind))
        try:
            if plain:
                self._ingest_files(job, plain)
            for path, state, kind in exports:
                self._ingest_export(job, path, state, kind)
        except Exception as exc:  # the job fails; the server goes on
            job.status, job.error = "failed", str(exc)
        else:
            job.done = len(job.files)
            job.status = "done"
        job.finished_at = time.time()

    def _ingest_files(self, job: Job, files: list[tuple[Path, FileState, str]]) -> None:
        by_path = {str(path.resolve()): state for path, state, _ in files}
        outcomes: dict[str, str] = {}

        def progress(event: Progress) -> None:
            state = by_path.get(event.source)
            if state is not None:
                # Parsed, not yet stored: "added" waits until the ingest has committed.
                outcomes[event.source] = event.outcome
                state.status, state.chunks = "ingesting", event.chunks
            job.done = event.done

        report = self.workspace.ingest([p for p, _, _ in files], job.collection, progress,
                                       source="files")  # fmt: skip
        for source, outcome in outcomes.items():
            by_path[source].status = outcome
        for failure in [*report.failed, *report.skipped]:
            state = by_path.get(failure.source)
            if state is not None:
                state.status = "failed" if failure in report.failed else "skipped"
                state.error = failure.reason
        _add_counts(job, report.counts())

    def _ingest_export(self, job: Job, path: Path, state: FileState, kind: str) -> None:
        state.status = f"ingesting ({kind})"
        report = self.workspace.ingest([path], job.collection, source=kind)
        state.kind = kind
        state.chunks = report.chunks
        state.documents = report.counts()
        if report.failed:
            state.error = "; ".join(f"{f.source}: {f.reason}" for f in report.failed[:5])
            if len(report.failed) > 5:
                state.error += f" (and {len(report.failed) - 5} more)"
        state.status = "failed" if report.failed and not (report.added or report.updated or
                                                          report.unchanged) else "added"  # fmt: skip
        _add_counts(job, report.counts())
        job.done += 1


def _add_counts(job: Job, counts: dict[str, int]) -> None:
    for name, value in counts.items():
        job.counts[name] = job.counts.get(name, 0) + value
