"""Fixtures: real files of every supported format, made here; real models, loaded once."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

# Tests never reach a model hub: everything they load ships in installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The environment overrides a workspace's citewise.toml: a CITEWISE_* variable in the shell
# that runs the tests would override every test's own settings. Tests set what they need.
for _name in [name for name in os.environ if name.startswith("CITEWISE_")]:
    del os.environ[_name]

FIXTURES = Path(__file__).parent / "fixtures"
# The console script installed beside the interpreter running the tests (PATH may not have it).
CITEWISE = str(Path(sys.executable).with_name("citewise"))

MARKDOWN = """\
# Deployment guide

Our service runs on three regions.

## Rotating API keys

To rotate the API keys, run `keyctl rotate --all` and restart the gateway.
The old keys stay valid for 24 hours after rotation.

## Backups

Backups run nightly at 02:00 UTC and are kept for 30 days.

```python
def restore(snapshot):
    return snapshot.apply()
```
"""

RST = """\
==============
Billing manual
==============

Introduction to invoices.

Refunds
-------

Refunds are issued within 14 business days to the original card.

Disputes
~~~~~~~~

Chargeback disputes go to the finance team at finance@example.com.
"""

HTML = """\
<!doctype html><html><head><title>Office handbook</title><style>p{color:red}</style></head>
<body><nav>Home | About</nav><main>
<h1>Office handbook</h1><p>The office opens at 8:30 and closes at 18:00.</p>
<h2>Parking</h2><p>Visitors park on level P2 of the garage behind the building.</p>
<ul><li>Bicycles go in the courtyard rack.</li></ul>
</main><footer>Copyright</footer><script>var x = 1;</script></body></html>
"""

PYTHON = '''\
"""Helpers for the thermostat firmware."""

import math


class Thermostat:
    """Keeps a room at a target temperature."""

    def set_target(self, celsius):
        """Set the target temperature in degrees Celsius."""
        self.target = celsius


def fahrenheit(celsius):
    return celsius * 9 / 5 + 32
'''

TEXT = """\
Meeting notes, March.

The cafeteria will serve vegetarian lasagna every Thursday.

The quarterly all-hands moves to the auditorium on the fifth floor.
"""


def make_pdf(path: Path, pages: list[str], title: str = "Safety procedures") -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    # A fixed date: the same pages make the same bytes (sync tests compare hashes).
    pdf.set_creation_date(datetime(2026, 1, 5, tzinfo=timezone.utc))
    pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Travel policy", level=1)
    document.add_paragraph("Employees book flights through the travel portal.")
    document.add_heading("Per diem", level=2)
    document.add_paragraph("The daily meal allowance abroad is 65 euros.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "City"
    table.cell(0, 1).text = "Hotel cap"
    table.cell(1, 0).text = "Zurich"
    table.cell(1, 1).text = "240 CHF"
    document.save(str(path))
    return path


def make_encrypted_pdf(path: Path, source: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner")
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_corpus(root: Path) -> Path:
    """A folder with one good file of each format, plus ignored and hidden files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "guide.md").write_text(MARKDOWN, encoding="utf-8")
    (root / "billing.rst").write_text(RST, encoding="utf-8")
    (root / "handbook.html").write_text(HTML, encoding="utf-8")
    (root / "notes.txt").write_text(TEXT, encoding="utf-8")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "thermostat.py").write_text(PYTHON, encoding="utf-8")
    make_pdf(
        root / "safety.pdf",
        [
            "Fire drills happen on the first Monday of each quarter.",
            "The emergency assembly point is the north parking lot, next to the flagpole.",
        ],
    )
    make_docx(root / "travel.docx")
    (root / ".gitignore").write_text("drafts/\n*.tmp.md\n", encoding="utf-8")
    (root / "drafts").mkdir(exist_ok=True)
    (root / "drafts" / "secret.md").write_text("# Draft\n\nThe launch codename is BLUEBIRD.\n")
    (root / "scratch.tmp.md").write_text("# Scratch\n\nIgnored scratch text.\n")
    (root / ".hidden.md").write_text("# Hidden\n\nHidden file text.\n")
    return root


def write_bad_files(root: Path) -> dict[str, str]:
    """Broken files and the words their error message must contain."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n%%EOF")
    good = make_pdf(root / "plain.tmp", ["Top secret plans."])
    make_encrypted_pdf(root / "locked.pdf", good)
    good.unlink()
    (root / "empty.md").write_text("")
    (root / "broken.docx").write_bytes(b"PK\x03\x04 not a zip at all")
    (root / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00")
    return {
        "broken.pdf": "corrupt PDF",
        "locked.pdf": "encrypted",
        "empty.md": "empty",
        "broken.docx": "corrupt DOCX",
        "binary.txt": "binary",
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def workspace(tmp_path: Path):
    from citewise import Workspace

    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def embedder():
    from citewise.embedders import load_embedder

    return load_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    from citewise.providers.local import resolve_gguf

    return resolve_gguf("smollm2-135m")


@pytest.fixture(scope="session")
def ingested_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the corpus ingested once; tests get a copy."""
    from citewise import Workspace

    root = tmp_path_factory.mktemp("template")
    corpus = write_corpus(root / "corpus")
    with Workspace.open(root / "ws") as ws:
        report = ws.ingest([corpus])
        assert report.added == 7, report
    return root


@pytest.fixture
def ingested(ingested_template: Path, tmp_path: Path):
    """(workspace, corpus dir) with every format ingested; the copy keeps tests independent."""
    from citewise import Workspace

    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws, ingested_template / "corpus"
    ws.close()


class LiveServer:
    """A real uvicorn server on a free loopback port, running in a thread of this process."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        import httpx

        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server at {self.url} never became ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def service(self):
        return self.app.state.service


@pytest.fixture(scope="module")
def standin_url():
    """An OpenAI-compatible STAND-IN (tests/standins.py) for one test module: (URL, script)."""
    from standins import stand_in

    with stand_in("openai") as (url, script):
        yield url, script


@contextmanager
def standin_workspace(template: Path, root: Path, base_url: str, *config: str) -> Iterator[Any]:
    """A copy of the ingested workspace at ``root``/ws, open (and closed after), its model the
    OpenAI-compatible STAND-IN at ``base_url``; ``config`` adds lines to citewise.toml
    (assistants)."""
    from citewise import Workspace

    shutil.copytree(template / "ws", root / "ws")
    lines = [
        'provider = "openai"',
        'model = "standin-model"',
        f'base_url = "{base_url}"',
        'api_key_env = "STANDIN_KEY"',
        *config,
        "",
    ]
    (root / "ws" / "citewise.toml").write_text("\n".join(lines), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STANDIN_KEY", "sk-standin")
        workspace = Workspace.open(root / "ws")
        try:
            yield workspace
        finally:
            workspace.close()


@contextmanager
def served_over_standin(
    template: Path, root: Path, base_url: str, *config: str
) -> Iterator[LiveServer]:
    """A copy of the ingested workspace behind a live server (no auth), its model the
    OpenAI-compatible STAND-IN at ``base_url``; ``config`` adds lines to citewise.toml
    (assistants)."""
    from citewise.server import create_app

    with (
        standin_workspace(template, root, base_url, *config) as workspace,
        LiveServer(create_app(workspace, auth=False)) as live,
    ):
        yield live


@contextmanager
def served(workspace, key: str) -> Iterator[LiveServer]:
    """``workspace`` behind a live server, with the key its tests call it with."""
    from citewise.server import create_app

    with LiveServer(create_app(workspace)) as live:
        live.key = key
        live.workspace = workspace
        yield live


def write_beir_dataset(root: Path, corpus: list[dict], queries: list[dict], qrels: str) -> Path:
    """A BEIR dataset at ``root``: its corpus and queries as JSON lines, ``qrels`` (TSV with
    a header) as the train split's judgements."""
    import json

    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "train.tsv").write_text(qrels)
    return root


# -- PostgreSQL (pgserver: PostgreSQL 16 with pgvector, on a Unix socket) ---------------


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    runtime = tmp_path_factory.mktemp("runtime")
    # pgserver keeps a lock in the user's runtime directory; CI shells have none set.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_RUNTIME_DIR", str(runtime))
        import pgserver  # the dev extra installs it: PostgreSQL 16 binaries, no service

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
        uri = server.get_uri()
        assert "host=/" in uri  # a Unix socket: nothing listens on the network
        yield uri
        server.cleanup()


def new_database(admin_uri: str) -> str:
    """A new, empty database on the session's PostgreSQL server: its URL."""
    import psycopg

    name = "test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return admin_uri.replace("/postgres?", f"/{name}?")


# -- recordings (espeak-ng speaks, ffmpeg joins and converts) ------------------------------


def run(*command: str) -> None:
    """A command that must succeed; its output is kept from the test's."""
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


def silence(path: Path, seconds: float, rate: int = 22050) -> None:
    """A mono recording of ``seconds`` of silence (its format from ``path``'s suffix)."""
    source = f"anullsrc=r={rate}:cl=mono"
    run("ffmpeg", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds), str(path))


# -- Redis (Debian's redis-server, started on 127.0.0.1) ------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Debian's redis-server on 127.0.0.1:``port`` (no persistence), once it answers."""
    binary = shutil.which("redis-server")
    if binary is None:  # `make test` installs it (Makefile: services)
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
    # Bound to loopback only, as asked.
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    client.close()
    return process


# -- `citewise serve` as a process (the replica and outage tests) ----------------------


def start_serve(
    workspace: Path, log: Path, lease_seconds: float, headers: dict[str, str] | None = None
) -> tuple[str, subprocess.Popen[bytes], dict[str, Any]]:
    """A `citewise serve` process on a free loopback port, once its /readyz is 200: its
    URL, the process and what /readyz said (with ``headers``, e.g. an admin key's)."""
    import httpx

    port = free_port()
    # The log goes to a file: a pipe nobody reads fills up and blocks the server.
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [CITEWISE, "-w", str(workspace), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "CITEWISE_JOB_LEASE_SECONDS": str(lease_seconds)},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "a replica never became ready"
        try:
            ready = httpx.get(url + "/readyz", timeout=5, headers=headers or {})
            if ready.status_code == 200:
                return url, process, ready.json()
        except httpx.TransportError:
            pass
        time.sleep(0.3)


# -- a real browser: Debian's Chromium, headless, through Playwright ---------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Chromium for one test module; the module's ``ARTIFACTS`` folder (screenshots) made."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install -y chromium)")
    artifacts = getattr(request.module, "ARTIFACTS", None)
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
