"""Dependencies going away under load: three `citewise serve` replicas share a PostgreSQL
(pgserver) and a redis-server of this test's own, which it stops and starts again while
clients keep calling. Clients see only 200/202 or 503 with Retry-After — never a 500 —
the first requests after recovery succeed without a restart, and no accepted upload is
lost. Rate limits while Redis is down fail closed by default, open when configured."""

from __future__ import annotations

import signal
import subprocess
import threading
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
from citewise.keys import create_key
from citewise.server import create_app
from citewise.workspace import init_workspace
from conftest import LiveServer, free_port, start_redis, start_serve, write_corpus

pytestmark = pytest.mark.slow


# -- services this test stops and starts ---------------------------------------------


class Postgres:
    """A pgserver PostgreSQL of this module's own (the session's is shared by others)."""

    def __init__(self, root: Path) -> None:
        import pgserver

        self.data = root / "pg"
        self.server = pgserver.get_server(self.data, cleanup_mode="stop")
        self.uri = self.server.get_uri()
        assert "host=/" in self.uri  # a Unix socket: nothing listens on the network

    def _pg_ctl(self, *args: str) -> None:
        from pgserver.postgres_server import pg_ctl

        pg_ctl(["-w", *args], pgdata=self.data, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("restart")  # pg_ctl restarts a stopped server with its recorded options


class Redis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = start_redis(self.port, self.dir)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)


# -- three replicas --------------------------------------------------------------------


@dataclass
class Fleet:
    workspace: Path
    postgres: Postgres
    redis: Redis
    urls: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}


def start_replica(workspace: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    url, process, _ = start_serve(workspace, log, lease_seconds=3)
    return url, process


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("outages")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
        postgres = Postgres(root)
        redis = Redis(root)
        workspace = init_workspace(root / "ws", store=postgres.uri)
        set_config_value(workspace / "citewise.toml", "redis_url", redis.url)
        with Workspace.open(workspace) as ws:
            ws.ingest([write_corpus(root / "corpus")])
            made = Fleet(workspace, postgres, redis)
            for name, scopes, rpm in (
                ("admin", ["ask", "ingest", "admin"], None),
                ("limited", ["ask"], 100_000),
                ("open", ["ask"], None),
            ):
                made.keys[name], _ = create_key(ws.store, name, ["*"], scopes, rpm=rpm)
        for n in range(3):
            url, process = start_replica(workspace, root / f"replica-{n}.log")
            made.urls.append(url)
            made.processes.append(process)
        try:
            yield made
        finally:
            for process in made.processes:
                process.send_signal(signal.SIGINT)
            for process in made.processes:
                process.wait(timeout=60)
            redis.stop()
            postgres.server.cleanup()


@dataclass
class Outcome:
    sent: float
    at: float
    what: str
    status: int
    retry_after: str | None
    code: str | None
    job: str | None = None


def call(fleet: Fleet, n: int) -> Outcome:
    """One client request, round-robin over replicas: a search, or every third an upload."""
    url = fleet.urls[n % len(fleet.urls)]
    sent = time.monotonic()
    try:
        if n % 3 == 0:
            name = f"note-{uuid.uuid4().hex[:8]}.md"
            files = {"files": (name, f"# Note {n}\n\nThe outage drill number {n}.\n".encode())}
            response = httpx.post(
                url + "/v1/collections/default/documents",
                files=files,
                headers=fleet.headers("admin"),
                timeout=30,
            )
            what = "upload"
        else:
            response = httpx.post(
                url + "/v1/search",
                json={"query": "rotate the keys", "k": 2},
                headers=fleet.headers("admin"),
                timeout=30,
            )
            what = "search"
    except httpx.TransportError as exc:  # a replica that stops answering is a failure too
        return Outcome(sent, time.monotonic(), "transport", 0, None, type(exc).__name__)
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
    job = body.get("id") if what == "upload" and response.status_code == 202 else None
    return Outcome(
        sent,
        time.monotonic(),
        what,
        response.status_code,
        response.headers.get("retry-after"),
        code,
        job,
    )


def load_through(
    fleet: Fleet, outage: float, stop, start
) -> tuple[list[Outcome], float, float, float]:
    """Clients call for 2 s, through ``outage`` s of a stopped dependency, and on until
    everything succeeds again (at most 60 s after the restart)."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    done = threading.Event()
    counter = iter(range(10**6))

    def client() -> None:
        while not done.is_set():
            with lock:
                n = next(counter)
            result = call(fleet, n)
            with lock:
                outcomes.append(result)
            time.sleep(0.05)

    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            pool.submit(client)
        time.sleep(2)
        stop()
        stopped = time.monotonic()  # after stop() returns: the database is down from here
        time.sleep(outage)
        starting = time.monotonic()
        start()
        restarted = time.monotonic()
        deadline = restarted + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            with lock:
                recent = [o for o in outcomes if o.at > time.monotonic() - 3]
            if (
                time.monotonic() - restarted > 5
                and recent
                and all(o.status in (200, 202) for o in recent)
            ):
                break
        time.sleep(2)
        done.set()
    return outcomes, stopped, starting, restarted


def test_a_postgresql_outage_is_503_then_recovers_and_loses_no_upload(fleet: Fleet) -> None:
    outcomes, stopped, starting, restarted = load_through(
        fleet, 6, fleet.postgres.stop, fleet.postgres.start
    )
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 202, 503}, [o for o in outcomes if o.status not in (200, 202, 503)]
    during = [o for o in outcomes if o.sent > stopped and o.at < starting]
    assert during and all(o.status == 503 for o in during)
    assert all(o.retry_after and int(o.retry_after) >= 1 for o in outcomes if o.status == 503)
    assert {o.code for o in outcomes if o.status == 503} <= {"store_unavailable"}
    # Recovery needs no restart of the replicas: a few seconds after PostgreSQL is back,
    # every request on every replica succeeds (each thread's dead connection is replaced).
    settled = [o for o in outcomes if o.sent > restarted + 5]
    assert settled and all(o.status in (200, 202) for o in settled), [
        o for o in settled if o.status not in (200, 202)
    ]
    first_after = min((o for o in outcomes if o.sent > restarted), key=lambda o: o.sent)
    assert first_after.status in (200, 202)
    # Every accepted upload becomes a document; a refused one left no file behind.
    accepted = [o.job for o in outcomes if o.job]
    assert accepted
    admin = fleet.headers("admin")
    deadline = time.monotonic() + 300
    for job in accepted:
        while True:
            state = httpx.get(f"{fleet.urls[0]}/v1/jobs/{job}", headers=admin).json()
            if state["status"] in ("done", "failed"):
                break
            assert time.monotonic() < deadline, f"job {job} never ended: {state}"
            time.sleep(0.2)
        assert state["status"] == "done", state
    with Workspace.open(fleet.workspace) as ws:
        collection = ws.store.collection("default")
        assert collection is not None
        stored = {Path(s).name for s in ws.store.sources(collection.id) if "uploads" in s}
    on_disk = {p.name for p in (fleet.workspace / "uploads" / "default").iterdir()}
    assert on_disk == stored  # nothing kept that no job ingests
    assert len(stored) == len(accepted)


def test_a_redis_outage_fails_limits_closed_and_readyz_stays_up(fleet: Fleet) -> None:
    url = fleet.urls[1]
    search = {"query": "rotate the keys", "k": 1}
    fleet.redis.stop()
    try:
        limited = httpx.post(url + "/v1/search", json=search, headers=fleet.headers("limited"))
        assert limited.status_code == 503
        assert limited.json()["error"]["code"] == "rate_limits_unavailable"
        assert int(limited.headers["retry-after"]) >= 1
        assert "redis://" not in limited.text and str(fleet.redis.port) not in limited.text
        # A key without limits never needs Redis.
        unlimited = httpx.post(url + "/v1/search", json=search, headers=fleet.headers("open"))
        assert unlimited.status_code == 200
        # One Redis blip must not drain the fleet: every replica stays ready, degraded.
        for replica in fleet.urls:
            ready = httpx.get(replica + "/readyz")
            assert ready.status_code == 200
            body = ready.json()
            assert body["status"] == "degraded"
            assert body["components"]["rate_limits"] == "unavailable"
            assert set(body) == {"status", "auth", "components"}  # no URLs, no messages
            assert str(fleet.redis.port) not in ready.text
        detailed = httpx.get(url + "/readyz", headers=fleet.headers("admin")).json()
        assert "rate_limits" in detailed["details"]
    finally:
        fleet.redis.start()
    deadline = time.monotonic() + 30
    while True:
        again = httpx.post(url + "/v1/search", json=search, headers=fleet.headers("limited"))
        if again.status_code == 200:
            break
        assert again.status_code == 503 and time.monotonic() < deadline
        time.sleep(0.2)
    assert httpx.get(url + "/readyz").json()["status"] == "ready"


@pytest.mark.parametrize("policy", ["closed", "open"])
def test_rate_limits_with_redis_unreachable_follow_the_setting(ingested, policy: str) -> None:
    ws, _ = ingested
    set_config_value(ws.path / "citewise.toml", "redis_url", f"redis://127.0.0.1:{free_port()}/0")
    set_config_value(ws.path / "citewise.toml", "rate_limit_outage", policy)
    workspace = Workspace.open(ws.path)
    key, _ = create_key(workspace.store, "limited", ["*"], ["ask", "admin"], rpm=10)
    with LiveServer(create_app(workspace)) as live:
        headers = {"Authorization": f"Bearer {key}"}
        response = httpx.post(
            live.url + "/v1/search", json={"query": "rotate", "k": 1}, headers=headers
        )
        metrics = httpx.get(live.url + "/metrics", headers=headers)
    workspace.close()
    if policy == "closed":
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "rate_limits_unavailable"
        assert metrics.status_code == 503  # the admin route is limited too
    else:
        assert response.status_code == 200
        assert metrics.status_code == 200
        assert (
            'citewise_dependency_unavailable_total{action="served",component="rate_limits"}'
            in metrics.text
        )
