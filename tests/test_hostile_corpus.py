"""A folder of hostile inputs beside good files, ingested as a user who cannot read
everything: every good file is ingested, every bad one is named with a reason, memory
stays bounded, and nothing is deleted that was not read.

The ingest runs in a child process without the capabilities that let root read any file
(``setpriv`` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so ``chmod 000`` means what
it means for every other user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import write_bad_files

GOOD = {
    "handbook.md": "# Handbook\n\nThe office opens at eight. Visitors sign in at the desk.\n",
    "team/roster.txt": "Alice runs the on-call rota. Bob owns the billing service.\n",
    "team/deep/faq.md": "# FAQ\n\nPasswords rotate every ninety days.\n",
}
MEMORY_BOUND_MB = 800  # peak RSS of the ingesting process (measured: about 450)
# The child's own peak: VmHWM belongs to its address space, which exec starts afresh
# (ru_maxrss would carry the parent's peak over from the fork).
CHILD = textwrap.dedent("""
    import json, sys
    from citewise import Workspace

    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    with Workspace.open(sys.argv[1]) as ws:
        report = (ws.sync if sys.argv[2] == "sync" else ws.ingest)([sys.argv[3]])
    print(json.dumps({
        "added": report.added, "deleted": report.deleted, "unchanged": report.unchanged,
        "failed": {f.source: f.reason for f in report.failed},
        "skipped": {s.source: s.reason for s in report.skipped},
        "peak_mb": peak_mb(),
    }))
""")


def without_root_powers(*command: str) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # util-linux is on every Debian; say so rather than pass
        pytest.fail("setpriv (util-linux) is needed to drop root's file-access override")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, "--inh-caps=-all", f"--bounding-set={drop}", *command]


def ingest_as_a_user(workspace: Path, mode: str, folder: Path) -> dict:
    result = subprocess.run(
        without_root_powers(sys.executable, "-c", CHILD, str(workspace), mode, str(folder)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def build_hostile_folder(root: Path) -> dict[str, str]:
    """Good files plus hostile ones; returns what each hostile one must be reported as."""
    for name, text in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    bad = root / "bad"
    expected = {str(bad / name): words for name, words in write_bad_files(bad).items()}
    (root / "loop").symlink_to(root / "loop")
    (root / "dangling.md").symlink_to(root / "nowhere.md")
    os.mkfifo(root / "pipe.txt")
    (root / os.fsdecode(b"caf\xe9-latin1.md")).write_text("latin-1 name")
    locked_file = root / "locked.md"
    locked_file.write_text("# Locked\n\nNobody may read this.\n")
    locked_file.chmod(0)
    locked_dir = root / "private"
    locked_dir.mkdir()
    (locked_dir / "plans.md").write_text("# Plans\n\nSecret plans.\n")
    locked_dir.chmod(0)
    (root / "._handbook.md").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # hidden: ignored
    bomb = root / "bomb.zip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out,
        out.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(300):
            member.write(b"\0" * (1 << 20))
    (root / "one-line.txt").write_text("x" * 2_000_000)  # no whitespace at all
    # 1 MB of prose, ~1,000 chunks to embed: far more than fit in one embedding batch, so
    # memory stays bounded only if chunks stream through (3 MB took a minute of the suite).
    with (root / "big.txt").open("w") as big:
        sentence = "The quarterly report lists revenue, costs and the plan for next year. "
        for _ in range(1024 * 1024 // len(sentence)):
            big.write(sentence)
    (root / "fake.md").write_bytes(os.urandom(4096))  # binary with a text extension
    expected |= {
        str(root / "loop"): "cannot read",
        str(root / "dangling.md"): "cannot read",
        str(locked_file): "Permission denied",
        str(locked_dir): "cannot read folder",
        str(root / "fake.md"): "binary",
    }
    return expected


@pytest.mark.slow
def test_hostile_folder_ingests_every_good_file_and_names_every_bad_one(tmp_path: Path) -> None:
    root = tmp_path / "hostile"
    root.mkdir()
    expected = build_hostile_folder(root)
    workspace = tmp_path / "ws"
    report = ingest_as_a_user(workspace, "ingest", root)
    problems = report["failed"] | report["skipped"]
    for source, words in expected.items():
        assert words in problems.get(source, ""), f"{source}: {problems.get(source)!r}"
    assert any("not valid UTF-8" in reason for reason in problems.values())
    assert "not a regular file" in problems[str(root / "pipe.txt")]
    assert "a zip archive read as plain files" in problems[str(root / "bomb.zip")]
    # The good files, the huge prose file and the huge line are all in.
    assert report["added"] == len(GOOD) + 2
    assert 100 < report["peak_mb"] < MEMORY_BOUND_MB, report["peak_mb"]


@pytest.mark.slow
def test_sync_never_deletes_what_it_could_not_read(tmp_path: Path) -> None:
    """A folder that was readable once and is not now keeps its documents (issue: sync
    used to delete them silently, and ingest skipped the folder without a word)."""
    root = tmp_path / "docs"
    for name, text in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    workspace = tmp_path / "ws"
    first = ingest_as_a_user(workspace, "sync", root)
    assert first["added"] == 3
    (root / "team").chmod(0)
    try:
        again = ingest_as_a_user(workspace, "sync", root)
    finally:
        (root / "team").chmod(0o755)
    assert again["deleted"] == 0 and again["unchanged"] == 1
    assert "cannot read folder" in again["failed"][str(root / "team")]
    readable = ingest_as_a_user(workspace, "sync", root)  # readable again: all still there
    assert (readable["unchanged"], readable["deleted"]) == (3, 0)
