"""Background ingestion: uploads are queued as jobs in the store and ingested by any
server replica that shares it.

Ingestion is CPU-bound (parsing, embedding), so each replica runs one job at a time in a
worker thread while it keeps answering. A replica holds a job by a lease it renews while
it works and writes the job's per-file progress and errors to the store, so every
replica reports the same job. When a replica stops (a crash, kill -9), its lease lapses
and another replica — or the same one restarted — takes the job over; documents already
stored are unchanged and cost a stat. A job whose replica stopped ``MAX_ATTEMPTS`` times
fails with that reason instead of being lost. Uploads saved but never queued (a stop
between the two) are queued again at start (``resume``) — not those a finished job ran
(a failed upload waits for a retry, it is not run again at every start); a half-written
``.part`` upload is removed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import setting_from_env
from ..connectors import detect_source
from ..errors import NotFound, Unavailable, WorkspaceError
from ..ingest import Progress
from ..storage import JobRecord
from ..workspace import Workspace

log = logging.getLogger("citewise.jobs")


@dataclass
class FileState:
    name: str
    status: str = "queued"  # queued | added | updated | unchanged | failed | skipped
    chunks: int = 0
    error: str | None = None
    kind: str = "file"  # or the connector that read an uploaded export: slack, notion, …
    documents: dict[str, int] | None = None  # an export's added/updated/… counts
    # A long file being embedded: its chunks embedded so far of all, and the time left.
    chunks_done: int = 0
    chunks_total: int = 0
    eta_seconds: float | None = None


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
    attempts: int = 0  # replicas that took it (more than one: a replica stopped)
    retry_of: str | None = None  # the job whose failed files this one runs again

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("paths")
        body["object"] = "ingest.job"
        body["total"] = len(self.files)
        return body

    def state(self) -> dict[str, Any]:
        """What the store keeps of the job."""
        return asdict(self) | {"paths": [str(p) for p in self.paths]}

    @classmethod
    def from_record(cls, record: JobRecord) -> Job:
        state = dict(record.state)
        files = [FileState(**f) for f in state.pop("files")]
        paths = [Path(p) for p in state.pop("paths")]
        state |= {
            "id": record.id,
            "collection": record.collection,
            "status": record.status,
            "attempts": record.attempts,
        }
        return cls(files=files, paths=paths, **state)


# A replica renews its lease on a running job every third of job_lease_seconds (a
# setting, CITEWISE_JOB_LEASE_SECONDS, read when a queue starts); a job whose lease
# lapsed (its replica stopped) is taken over by the next replica that looks.
MAX_ATTEMPTS = 3
POLL_SECONDS = 1.0  # how often an idle replica looks for queued jobs (its own wake it at once)
SAVE_EVERY = 0.5  # seconds between progress writes


class JobQueue:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_seconds = setting_from_env("job_lease_seconds", float)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="citewise-ingest", daemon=True)
        self._thread.start()

    def resume(self, uploads: Path) -> list[Job]:
        """A job per collection for uploads saved but never queued (a stop between the two);
        uploads of unfinished jobs are left to those jobs."""
        jobs: list[Job] = []
        if not uploads.is_dir():
            return jobs
        queued = self.store.unfinished_job_files()
        # A file a job already ran and that was not written since (it failed: a corrupt
        # PDF) is that job's to retry (``retry``), not retried again at every start.
        ran = self.store.finished_job_files()
        for folder in sorted(p for p in uploads.iterdir() if p.is_dir()):
            for partial in folder.glob("*.part"):
                partial.unlink(missing_ok=True)  # an upload cut off while it was written
            files = [(p.name, p) for p in sorted(folder.iterdir()) if p.is_file()]
            collection = self.store.collection(folder.name)
            stored = self.store.sources(collection.id) if collection else {}
            unfinished = [
                (n, p)
                for n, p in files
                if str(p.resolve()) not in stored
                and str(p) not in queued
                and not _ran_since_written(p, ran)
            ]
            if unfinished:
                jobs.append(self.submit(folder.name, unfinished))
        return jobs

    def submit(self, collection: str, files: list[tuple[str, Path]]) -> Job:
        job = Job(
            uuid.uuid4().hex[:16],
            collection,
            [FileState(name) for name, _ in files],
            [path for _, path in files],
        )
        self.store.create_job(job.id, collection, job.state())
        self._wake.set()  # this replica looks at once; the others within POLL_SECONDS
        return job

    def get(self, job_id: str) -> Job | None:
        record = self.store.job(job_id)
        return Job.from_record(record) if record is not None else None

    def recent(
        self, status: str | None = None, limit: int = 100, collection: str | None = None
    ) -> list[Job]:
        """The newest jobs first (of one status, one collection when given)."""
        return [Job.from_record(r) for r in self.store.jobs(status, limit, collection)]

    def retry(self, job_id: str) -> Job:
        """A new job for the files of ``job_id`` that were not stored (failed, or never
        reached when the job itself failed), read again from the uploads the server kept.
        :class:`NotRetryable` says why not: the job is unfinished, nothing failed, or the
        uploads are gone (deleted, or the upload folder cleaned): upload them again."""
        job = self.get(job_id)
        if job is None:
            raise NotFound(f"No ingest job {job_id}", code="job_not_found")
        files, gone = retry_plan(job)
        if job.status in ("queued", "running"):
            raise NotRetryable(f"Job {job_id} is still {job.status}; retry it once it ends")
        retry = self.retried_by().get(job_id)
        if retry is not None:
            raise NotRetryable(
                f"Job {job_id} was retried as job {retry}: its failed files are that "
                "job's now (retry that one if they failed again)"
            )
        if not files and not gone:
            raise NotRetryable(f"Nothing to retry: no file of job {job_id} failed")
        if not files:
            raise NotRetryable(
                f"The uploads of job {job_id} are gone from the server ({', '.join(gone)}): "
                "upload the files again"
            )
        retried = Job(
            uuid.uuid4().hex[:16],
            job.collection,
            [FileState(name) for name, _ in files],
            [path for _, path in files],
            retry_of=job.id,
        )
        self.store.create_job(retried.id, retried.collection, retried.state())
        self._wake.set()
        return retried

    def retried_by(self, limit: int = 500) -> dict[str, str]:
        """Among the newest ``limit`` jobs, the retries: the id of the job each one
        retried -> the latest retry's id."""
        return {j.retry_of: j.id for j in reversed(self.recent(limit=limit)) if j.retry_of}

    def counts(self) -> dict[str, int]:
        found = self.store.job_counts()
        return {state: found.get(state, 0) for state in ("queued", "running", "done", "failed")}

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

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
        while not self._stop.is_set():
            try:
                record = self.store.claim_job(self.worker, self.lease_seconds, MAX_ATTEMPTS)
            except Exception:  # the store is unreachable for now: look again later
                record = None
            if record is None:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                continue
            job = Job.from_record(record)
            job.status = "running"
            with _Lease(self, job):
                self._run_job(job)
            if job.status == "interrupted":
                # The store went away mid-job: not the job's fault. Its lease lapses and a
                # worker takes it over once the store is back (stored files cost a stat).
                log.warning("ingest job %s interrupted: %s", job.id, job.error)
                continue
            try:
                self._save(job)
            except Exception as exc:  # the same: its lease lapses, the job is run again
                log.warning("ingest job %s could not be recorded: %s", job.id, exc)

    def _save(self, job: Job) -> None:
        self.store.save_job(job.id, self.worker, job.status, job.state(), self.lease_seconds)

    def _run_job(self, job: Job) -> None:
        job.status = "running"
        # Plain files go in together; an uploaded export (a Slack or Notion zip, a Takeout
        # part, an mbox) goes through its connector and reports its own totals.
        plain: list[tuple[Path, FileState, str]] = []
        exports: list[tuple[Path, FileState, str]] = []
        for path, state in zip(job.paths, job.files, strict=True):
            kind = detect_source(str(path))
            (plain if kind in ("files", "web") else exports).append((path, state, kind))
        try:
            if plain:
                self._ingest_files(job, plain)
            for path, state, kind in exports:
                self._ingest_export(job, path, state, kind)
        except Unavailable as exc:
            job.status, job.error = "interrupted", str(exc)
            return
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
            if state is not None and event.outcome == "embedding":
                state.status = "ingesting"
                state.chunks_done, state.chunks_total = event.chunks_done, event.chunks_total
                state.eta_seconds = event.eta_seconds
                job.done = event.done
                saver.maybe()
                return
            if state is not None:
                outcomes[event.source] = event.outcome
                state.chunks = event.chunks
                # Parsed, not yet stored: "added" waits until its batch is committed.
                stored = event.outcome not in ("added", "updated")
                state.status = event.outcome if stored else "ingesting"
            for source in event.committed:  # stored now: searchable, so say so
                if source in by_path and source in outcomes:
                    by_path[source].status = outcomes[source]
            job.done = event.done
            if event.committed:
                saver.now()  # a reader polling the job sees it at once
            else:
                saver.maybe()

        saver = _Throttled(lambda: self._save(job))
        report = self.workspace.ingest(
            [p for p, _, _ in files], job.collection, progress, source="files"
        )
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
        problems = [*report.failed, *report.warnings]  # warnings: parts of stored documents
        if problems:
            state.error = "; ".join(f"{f.source}: {f.reason}" for f in problems[:5])
            if len(problems) > 5:
                state.error += f" (and {len(problems) - 5} more)"
        state.status = (
            "failed"
            if report.failed and not (report.added or report.updated or report.unchanged)
            else "added"
        )
        _add_counts(job, report.counts())
        job.done += 1


# A file in one of these states was stored (or skipped on purpose: an unsupported
# type): a retry leaves it out.
STORED = ("added", "updated", "unchanged", "skipped")


class NotRetryable(WorkspaceError):
    """A job that cannot be run again, and why."""


def retry_plan(job: Job) -> tuple[list[tuple[str, Path]], list[str]]:
    """(name, path) of each file of ``job`` a retry runs again — failed, or not reached
    when the job failed — whose upload the server still has; and the names of those whose
    upload is gone."""
    files: list[tuple[str, Path]] = []
    gone: list[str] = []
    for state, path in zip(job.files, job.paths, strict=True):
        if state.status in STORED:
            continue
        if state.status != "failed" and job.status != "failed":
            continue
        if path.is_file():
            files.append((state.name, path))
        else:
            gone.append(state.name)
    return files, gone


def _ran_since_written(path: Path, ran: dict[str, float]) -> bool:
    """Whether an ended job ran ``path`` after it was last written."""
    queued_at = ran.get(str(path))
    if queued_at is None:
        return False
    try:
        return path.stat().st_mtime <= queued_at
    except OSError:
        return False


def _add_counts(job: Job, counts: dict[str, int]) -> None:
    for name, value in counts.items():
        job.counts[name] = job.counts.get(name, 0) + value


class _Lease:
    """Renews a running job's lease (with its progress) until the job ends."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self.queue, self.job = queue, job
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="citewise-job-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=self.queue.lease_seconds)

    def _renew(self) -> None:
        while not self._done.wait(self.queue.lease_seconds / 3):
            try:
                self.queue._save(self.job)
            except Exception:
                continue


class _Throttled:
    def __init__(self, action: Any) -> None:
        self.action = action
        self.last = 0.0

    def maybe(self) -> None:
        if time.monotonic() - self.last >= SAVE_EVERY:
            self.now()

    def now(self) -> None:
        self.last = time.monotonic()
        self.action()
