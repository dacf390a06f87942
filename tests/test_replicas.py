"""Stateless replicas: three `citewise serve` processes on loopback share one PostgreSQL
(pgserver: the store, the ledger, the jobs) and one redis-server (rate limits), and a
client fleet spread across them sees one service — the commands the README's deployment
section gives."""

from __future__ import annotations

import math
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.config import set_config_value
from citewise.workspace import init_workspace
from conftest import CITEWISE, new_database, start_serve, write_corpus

pytestmark = pytest.mark.slow
LEASE_SECONDS = 3  # a stopped replica's job is taken over after this


@dataclass
class Replica:
    url: str
    process: subprocess.Popen
    name: str = ""


@dataclass
class Cluster:
    workspace: Path
    replicas: list[Replica]
    keys: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CITEWISE, "-w", str(self.workspace), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def key(self, name: str, *options: str) -> str:
        made = self.cli("keys", "create", "--name", name, *options)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()


def start_replica(workspace: Path, admin_key: str) -> Replica:
    log = workspace.parent / f"replica-{uuid.uuid4().hex[:8]}.log"
    url, process, ready = start_serve(workspace, log, LEASE_SECONDS, auth(admin_key))
    return Replica(url, process, ready["replica"])


@pytest.fixture(scope="module")
def cluster(
    postgres: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    workspace = init_workspace(root / "ws", store=new_database(postgres))
    set_config_value(workspace / "citewise.toml", "redis_url", redis_url)
    with Workspace.open(workspace) as ws:
        ws.ingest([write_corpus(root / "corpus")])
    made = Cluster(workspace, [])
    made.keys["admin"] = made.key("admin", "--scopes", "ask,ingest,admin")  # auth on from the start
    made.replicas = [start_replica(workspace, made.keys["admin"]) for _ in range(3)]
    yield made
    for replica in made.replicas:
        replica.process.send_signal(signal.SIGINT)
    for replica in made.replicas:
        replica.process.wait(timeout=60)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_replica_reports_the_shared_store_and_redis(cluster: Cluster) -> None:
    admin = auth(cluster.keys["admin"])
    states = [httpx.get(r.url + "/readyz", headers=admin).json() for r in cluster.replicas]
    assert {s["details"]["rate_limits"] for s in states} == {"redis"}
    from citewise.storage.postgres import _MIGRATIONS

    # Every replica reports the store's schema version: the newest migration, once.
    assert {s["details"]["store"] for s in states} == {_MIGRATIONS[-1][0]}
    assert len({s["replica"] for s in states}) == 3
    # Without a key: statuses only — no versions, backends or replica names.
    public = httpx.get(cluster.replicas[0].url + "/readyz").json()
    assert public == {
        "status": "ready",
        "auth": True,
        "components": {"store": "ok", "ledger": "ok", "rate_limits": "ok", "model": "ok"},
    }


def test_a_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    key = cluster.key("limited", "--scopes", "ask", "--rpm", "60")
    body = {"query": "rotate the API keys", "k": 1}

    def call(n: int) -> int:
        replica = cluster.replicas[n % 3]
        return httpx.post(
            replica.url + "/v1/search", json=body, headers=auth(key), timeout=60
        ).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(6) as fleet:
        statuses = list(fleet.map(call, range(120)))
    elapsed = time.monotonic() - started
    allowed = statuses.count(200)
    # The bucket holds a minute's allowance (60) and refills at one a second: per-process
    # buckets would have let up to 120 through (60 on each of two replicas, 120 on three).
    assert 60 <= allowed <= 60 + math.ceil(elapsed) + 1, (allowed, elapsed)
    assert statuses.count(429) == 120 - allowed


def test_a_budget_burst_cannot_overspend(cluster: Cluster) -> None:
    key = cluster.key("spender", "--scopes", "ask")
    budget = 1200
    assert cluster.cli("budgets", "set", "key:spender", "--tokens", str(budget)).returncode == 0
    body = {
        "model": "citewise",
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "How do I rotate the API keys?"}],
    }

    def ask(n: int) -> int:
        replica = cluster.replicas[n % 3]
        response = httpx.post(
            replica.url + "/v1/chat/completions", json=body, headers=auth(key), timeout=300
        )
        return response.status_code

    with ThreadPoolExecutor(9) as fleet:
        statuses = list(fleet.map(ask, range(9)))
    assert 200 in statuses and 429 in statuses, statuses  # some answered, the rest refused
    with Workspace.open(cluster.workspace) as ws:
        spent = sum(r.prompt_tokens + r.completion_tokens for r in ws.ledger.rows(key="spender"))
    assert 0 < spent <= budget, spent


def test_a_key_revoked_anywhere_is_refused_everywhere_at_once(cluster: Cluster) -> None:
    key = cluster.key("leaver", "--scopes", "ask")
    body = {"query": "backups", "k": 1}
    for replica in cluster.replicas:
        assert (
            httpx.post(replica.url + "/v1/search", json=body, headers=auth(key)).status_code == 200
        )
    assert cluster.cli("keys", "revoke", "leaver").returncode == 0
    for replica in cluster.replicas:  # the very next request, on every replica
        assert (
            httpx.post(replica.url + "/v1/search", json=body, headers=auth(key)).status_code == 401
        )


def test_an_upload_to_one_replica_is_searchable_from_another(cluster: Cluster) -> None:
    admin = auth(cluster.keys["admin"])
    first, second, third = cluster.replicas
    note = ("zeppelin.md", b"# Airship\n\nThe zeppelin hangar opens at dawn on Tuesdays.\n")
    posted = httpx.post(
        first.url + "/v1/collections/default/documents", files=[("files", note)], headers=admin
    )
    assert posted.status_code == 202, posted.text
    job = wait_for_job(
        second, posted.json()["id"], admin
    )  # reported by a replica that did not queue it
    assert job["status"] == "done" and job["files"][0]["status"] == "added"
    found = httpx.post(
        third.url + "/v1/search",
        json={"query": "when does the zeppelin hangar open", "k": 1},
        headers=admin,
    ).json()
    assert "zeppelin hangar" in found["data"][0]["text"]


def test_a_job_whose_replica_is_killed_is_taken_over(cluster: Cluster, tmp_path: Path) -> None:
    admin = auth(cluster.keys["admin"])
    doomed = start_replica(cluster.workspace, cluster.keys["admin"])
    files = [
        ("files", (f"memo{n:03d}.md", f"# Memo {n}\n\n" + f"Memo {n} says budget line {n}. " * 60))
        for n in range(150)
    ]
    posted = httpx.post(
        doomed.url + "/v1/collections/default/documents", files=files, headers=admin, timeout=120
    )
    assert posted.status_code == 202
    job_id = posted.json()["id"]
    with Workspace.open(cluster.workspace) as ws:
        deadline = time.monotonic() + 120
        while True:  # the replica that queued it runs it: kill it half way
            record = ws.store.job(job_id)
            if record is not None and record.worker == doomed.name and record.state["done"] > 0:
                break
            assert time.monotonic() < deadline, record
            time.sleep(0.05)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
        assert ws.store.job(job_id).status == "running"  # nobody has noticed yet
    job = wait_for_job(cluster.replicas[0], job_id, admin, timeout=300)
    assert job["status"] == "done" and job["attempts"] == 2, job
    assert {f["status"] for f in job["files"]} <= {"added", "unchanged"}
    found = httpx.post(
        cluster.replicas[1].url + "/v1/search",
        json={"query": "memo 149 budget line 149", "k": 1},
        headers=admin,
    ).json()
    assert "Memo 149" in found["data"][0]["text"]


def wait_for_job(
    replica: Replica, job_id: str, headers: dict[str, str], timeout: float = 120
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{replica.url}/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")
