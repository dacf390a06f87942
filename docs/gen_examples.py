"""Regenerate the console transcripts in README.md and docs/ from real runs (`make examples`).

Each transcript sits between marker comments, in README.md or any page under docs/:

    <!-- example: demo -->
    ```console
    $ citewise ingest docs/
    …
    ```
    <!-- /example -->

This script runs the commands of every example below with the installed ``citewise`` (the
default offline model, real files: the ones the tests build, from tests/conftest.py,
tests/exports.py and the connector tests) and writes what they printed between the markers.
It loads the local chat model many times, so it takes minutes; it is not part of `make test`.

    python docs/gen_examples.py                 # every example
    python docs/gen_examples.py demo search     # only these
    python docs/gen_examples.py --list          # names, and the files that show each

Paths of the scratch directories are shown as a reader's would be (``~/Downloads/…``), and a
site served on loopback as ``https://docs.example.com``; everything else is printed as run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"
CITEWISE = str(Path(sys.executable).with_name("citewise"))
MARKER = re.compile(
    r"(?P<open><!-- example: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /example -->)",
    re.S,
)
SAFE = re.compile(r"^[\w@%+=:,./~-]+$")


def shown(arg: str) -> str:
    """An argument as a person would type it: bare when safe, else in double quotes."""
    if SAFE.match(arg):
        return arg
    if not re.search(r'["$`\\!]', arg):
        return f'"{arg}"'
    return "'" + arg.replace("'", "'\\''") + "'"


class Session:
    """Runs `citewise` commands in one scratch directory and records the transcript."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.cwd = root
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as in a terminal
            "HF_HUB_OFFLINE": "1",
            "NO_COLOR": "1",
            **(env or {}),
        }
        self.env.pop("CITEWISE_RAISE_ERRORS", None)
        self.replace: list[tuple[str, str]] = []
        self.blocks: list[str] = []

    def show_as(self, real: str | Path, text: str) -> None:
        self.replace.append((str(real), text))

    def _display(self, text: str) -> str:
        for real, text_shown in self.replace:
            text = text.replace(real, text_shown)
        return text

    def _run(self, args: tuple[str, ...]) -> str:
        done = subprocess.run(
            [CITEWISE, *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0 or "Traceback (most recent call last)" in done.stdout:
            # A transcript of a crash documents nothing: stop before any page is written.
            raise RuntimeError(
                f"citewise {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}"
            )
        return done.stdout

    def run(
        self,
        *args: str,
        show: bool = True,
        output: bool = True,
        head: int | None = None,
        comment: str = "",
    ) -> str:
        """Run `citewise ARGS`; unless ``show`` is false, add the command and what it printed
        (only its first ``head`` lines, then ``...``; nothing when ``output`` is false)."""
        printed = self._run(args)
        if show:
            line = "$ " + " ".join(["citewise", *(shown(a) for a in args)])
            if comment:
                line = f"{line:<37} # {comment}" if len(line) < 37 else f"{line}   # {comment}"
            body = printed.strip("\n")
            if head is not None and len(body.splitlines()) > head:
                body = "\n".join([*body.splitlines()[:head], "..."])
            block = line + ("\n" + body if output and body.strip() else "")
            self.blocks.append(self._display(block))
        return printed

    def chain(self, *commands: tuple[str, ...]) -> None:
        """Run commands one after the other, shown as one `a && b` line without output."""
        for args in commands:
            self._run(args)
        line = " && ".join(" ".join(["citewise", *(shown(a) for a in c)]) for c in commands)
        self.blocks.append(self._display("$ " + line))

    def transcript(self, separate: bool = True) -> str:
        return ("\n\n" if separate else "\n").join(self.blocks)


def _tests_on_path() -> None:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


def readme_corpus(root: Path) -> Session:
    """The tests' seven-format folder (tests/conftest.py) plus one broken PDF, at a fixed
    path so the sources read the same in every run."""
    _tests_on_path()
    from conftest import make_pdf, write_corpus

    if root.exists():
        shutil.rmtree(root)
    docs = write_corpus(root / "docs")
    scan = make_pdf(root / "scan.tmp", ["A scanned page."], title="Scan")
    (docs / "scan.pdf").write_bytes(scan.read_bytes()[: scan.stat().st_size // 2])  # truncated
    scan.unlink()
    return Session(root, {"CITEWISE_WORKSPACE": str(root / "ws")})


def example_demo(scratch: Path) -> str:
    session = readme_corpus(Path("/tmp/readme-demo"))
    session.run("ingest", "docs/")
    session.run("ask", "How do I rotate the API keys?")
    session.run("ask", "What is the melting point of tungsten?")
    return session.transcript()


def example_search(scratch: Path) -> str:
    session = readme_corpus(Path("/tmp/readme-demo"))
    session.run("ingest", "docs/", show=False)
    session.run("search", "How long do refunds take?", "-k", "2")
    return session.transcript()


def example_openai_sdk(scratch: Path) -> str:
    """What the README's openai snippet prints against `citewise serve` (the block the tests
    run, taken from the README itself): the program's output, no command line."""
    import socket
    import time
    import urllib.request

    session = readme_corpus(Path("/tmp/readme-demo"))
    session.run("ingest", "docs/", show=False)
    created = session.run("keys", "create", "--name", "readme", show=False)
    key = re.search(r"cw-[\w-]{40,}", created)[0]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [CITEWISE, "serve", "--port", str(port)],
        cwd=session.cwd,
        env=session.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("citewise serve did not become ready")
            time.sleep(0.5)
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        marker = readme.index("<!-- snippet: openai-sdk")
        code = re.search(r"```python\n(.*?)```", readme[marker:], re.S)[1]
        code = code.replace("http://127.0.0.1:8080/v1", f"http://127.0.0.1:{port}/v1")
        code = code.replace('api_key="cw-…"', f'api_key="{key}"')
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"the openai snippet failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip("\n")
    finally:
        server.terminate()
        server.wait(timeout=60)


def _demo_session(scratch: Path) -> Session:
    """`citewise demo` as a user runs it: the default workspace under ~/.local/share."""
    data = scratch / "share"
    session = Session(scratch, {"XDG_DATA_HOME": str(data)})
    session.env.pop("CITEWISE_WORKSPACE", None)
    session.show_as(data, "~/.local/share")
    return session


def example_make_demo(scratch: Path) -> str:
    session = _demo_session(scratch)
    session.run("demo")
    return session.transcript()


def example_usage(scratch: Path) -> str:
    session = _demo_session(scratch)
    session.chain(("demo",), ("ask", "What does the with statement do?", "--as", "alice"))
    session.run("usage", "--by", "key")
    return session.transcript(separate=False)


def example_tune(scratch: Path) -> str:
    session = _demo_session(scratch)
    session.cwd = ROOT
    session.run("demo", output=False, comment="indexes the reference into python-docs")
    session.run("tune", "examples/python-docs-labels.jsonl", "-c", "python-docs")
    return session.transcript(separate=False)


def _downloads(scratch: Path, folder: str) -> tuple[Session, Path]:
    root = scratch / "Downloads" / folder
    root.mkdir(parents=True)
    session = Session(scratch, {"CITEWISE_WORKSPACE": str(scratch / "ws")})
    session.show_as(scratch, "~")
    return session, root


def example_notion(scratch: Path) -> str:
    _tests_on_path()
    from exports import make_notion_export

    session, root = _downloads(scratch, "n")
    session.run("ingest", str(make_notion_export(root)))
    session.run("ask", "When does the on-call rota change?")
    return session.transcript()


def example_slack(scratch: Path) -> str:
    _tests_on_path()
    from exports import make_slack_export

    session, root = _downloads(scratch, "s")
    session.run("ingest", str(make_slack_export(root)))
    session.run("ask", "What command rotates the staging database password?")
    return session.transcript()


def example_gmail(scratch: Path) -> str:
    _tests_on_path()
    from exports import make_mbox

    session, root = _downloads(scratch, "g")
    session.run("ingest", str(make_mbox(root)))
    session.run("ask", "Where will the Q3 offsite be?")
    return session.transcript()


def example_drive(scratch: Path) -> str:
    _tests_on_path()
    from exports import make_drive_takeout

    session, root = _downloads(scratch, "d")
    session.run("ingest", str(make_drive_takeout(root)))
    session.run("ask", "What is the daily meal allowance abroad?")
    return session.transcript()


def example_transcripts(scratch: Path) -> str:
    _tests_on_path()
    from test_transcripts import SRT

    session, root = _downloads(scratch, "calls")
    (root / "planning.srt").write_text(SRT, encoding="utf-8")
    session.run("ingest", str(root))
    session.run("ask", "What is the budget for the Lyon opening?")
    return session.transcript()


def example_web(scratch: Path) -> str:
    _tests_on_path()
    from test_connector_web import Site

    site = Site(scratch)
    try:
        session = Session(scratch, {"CITEWISE_WORKSPACE": str(scratch / "ws")})
        session.show_as(site.url, "https://docs.example.com")
        session.run("ingest", site.url + "/", "--max-depth", "2")
        session.run("ask", "How much memory does the agent need?")
    finally:
        site.server.shutdown()
    return session.transcript()


def example_transcript_tools(scratch: Path) -> str:
    _tests_on_path()
    from test_transcript_tools import TURNS, vtt

    session = Session(scratch, {"CITEWISE_WORKSPACE": str(scratch / "ws")})
    (scratch / "meeting.vtt").write_text(vtt(TURNS), encoding="utf-8")
    session.run("ingest", "meeting.vtt", output=False)
    clean = ("transcript", "clean", "meeting.vtt", "--format", "vtt", "-o", "meeting-clean.vtt")
    session.run(*clean, comment="or text, srt, json")
    session.run("transcript", "chapters", "meeting.vtt")
    session.run(
        "transcript", "classify", "meeting.vtt", "--labels", "space,gardening,money", head=3
    )
    return session.transcript(separate=False)


EXAMPLES: dict[str, Callable[[Path], str]] = {
    name.removeprefix("example_").replace("_", "-"): function
    for name, function in sorted(globals().items())
    if name.startswith("example_")
}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def shown_in() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for page in pages():
        for match in MARKER.finditer(page.read_text(encoding="utf-8")):
            found.setdefault(match["name"], []).append(page)
    return found


def write(results: dict[str, str]) -> None:
    for page in pages():
        text = page.read_text(encoding="utf-8")

        def fill(match: re.Match[str]) -> str:
            if match["name"] not in results:
                return match[0]
            body = f"```console\n{results[match['name']]}\n```\n"
            return match["open"] + body + match["close"]

        new = MARKER.sub(fill, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"wrote {page.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="examples to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the examples and stop")
    args = parser.parse_args()
    where = shown_in()
    if args.list:
        for name in EXAMPLES:
            files = ", ".join(str(p.relative_to(ROOT)) for p in where.get(name, [])) or "-"
            print(f"{name:18} {files}")
        return 0
    unknown = sorted(set(args.names) - set(EXAMPLES)) + sorted(set(where) - set(EXAMPLES))
    if unknown:
        print(f"unknown examples: {', '.join(unknown)}", file=sys.stderr)
        return 2
    results = {}
    for name in args.names or list(EXAMPLES):
        print(f"running {name}…", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"citewise-example-{name}-") as scratch:
            results[name] = EXAMPLES[name](Path(scratch))
    write(results)
    missing = [name for name in results if name not in where]
    for name in missing:
        print(f"note: no page shows example {name!r} (add its markers)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
