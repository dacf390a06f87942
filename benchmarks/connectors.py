"""Connector throughput and memory on generated exports.

    python benchmarks/connectors.py [--messages 100000] [--mails 10000] [--json out.json]

Generates a Slack workspace export (zip, 20 channels, about a third of the messages
in threads) and a Gmail Takeout mbox (threads of 1-6 mails, a quarter with an HTML
alternative and quoted replies), then measures, each in a fresh process so peak RSS
is its own:

- parse: the connector alone (read, group, render every document; no embedding);
- ingest: the whole pipeline into a new workspace (parse, chunk, embed, store);
- re-ingest: the same export again (every document unchanged: hashes only).

Parsing is also run on an export a quarter of the size: if the connector streams,
its peak memory barely changes while the export grows fourfold.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

WORDS = [
    "deploy",
    "release",
    "database",
    "index",
    "query",
    "latency",
    "budget",
    "review",
    "customer",
    "invoice",
    "design",
    "roadmap",
    "meeting",
    "incident",
    "backup",
    "restore",
    "cluster",
    "pipeline",
    "schema",
    "migration",
    "feature",
    "ticket",
    "sprint",
    "estimate",
    "launch",
    "metrics",
    "dashboard",
    "alert",
    "pager",
    "rotation",
    "vendor",
    "contract",
    "hiring",
    "onboarding",
    "security",
    "audit",
    "policy",
    "travel",
    "office",
    "lunch",
    "coffee",
    "report",
    "quarter",
]
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


def sentence(rng: random.Random, low: int = 8, high: int = 24) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def make_slack(path: Path, messages: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    users = [
        {
            "id": f"U{i:04d}",
            "team_id": "TBENCH",
            "name": f"user{i}",
            "profile": {"real_name": f"User {i}"},
        }
        for i in range(50)
    ]
    channels = [
        {"id": f"C{i:04d}", "name": f"channel-{i}", "members": [u["id"] for u in users[:20]]}
        for i in range(20)
    ]
    per_channel = messages // len(channels)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("users.json", json.dumps(users))
        out.writestr("channels.json", json.dumps(channels))
        for name in ("groups.json", "dms.json", "mpims.json"):
            out.writestr(name, "[]")
        for channel in channels:
            day, written, days = None, 0, {}
            clock = T0
            while written < per_channel:
                clock += timedelta(minutes=rng.randint(1, 90))
                root_ts = f"{clock.timestamp():.6f}"
                replies = rng.choice([0, 0, 0, 2, 3, 5]) if written + 6 < per_channel else 0
                message = {
                    "type": "message",
                    "user": rng.choice(users)["id"],
                    "ts": root_ts,
                    "text": sentence(rng) + f" <@{rng.choice(users)['id']}> :tada:",
                }
                if replies:
                    message["thread_ts"] = root_ts
                day = clock.strftime("%Y-%m-%d")
                days.setdefault(day, []).append(message)
                written += 1
                for r in range(replies):
                    when = clock + timedelta(minutes=5 * (r + 1))
                    days.setdefault(when.strftime("%Y-%m-%d"), []).append(
                        {
                            "type": "message",
                            "user": rng.choice(users)["id"],
                            "thread_ts": root_ts,
                            "ts": f"{when.timestamp():.6f}",
                            "text": sentence(rng),
                        }
                    )
                    written += 1
            for day_name, day_messages in days.items():
                out.writestr(f"{channel['name']}/{day_name}.json", json.dumps(day_messages))


def make_mbox(path: Path, mails: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    box = mailbox.mbox(path)
    written, thread = 0, 0
    while written < mails:
        thread += 1
        size = min(rng.randint(1, 6), mails - written)
        subject = sentence(rng, 3, 7).rstrip(".")
        previous, body_before = None, ""
        for i in range(size):
            message = EmailMessage()
            message["From"] = f"User {rng.randint(1, 40)} <user{rng.randint(1, 40)}@example.com>"
            message["To"] = "me@example.com"
            message["Delivered-To"] = "me@example.com"
            message["Subject"] = ("Re: " if i else "") + subject
            message["Date"] = format_datetime(T0 + timedelta(hours=thread, minutes=10 * i))
            message_id = f"m{thread}-{i}@example.com"
            message["Message-ID"] = f"<{message_id}>"
            message["X-GM-THRID"] = str(1_700_000_000_000_000_000 + thread)
            message["X-Gmail-Labels"] = rng.choice(["Inbox", "Inbox,Important", "Archived"])
            if previous:
                message["In-Reply-To"] = f"<{previous}>"
            body = " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))
            quoted = "\n".join("> " + line for line in body_before.splitlines())
            message.set_content(
                body + (f"\n\nOn Monday someone wrote:\n{quoted}" if quoted else "")
            )
            if rng.random() < 0.25:
                message.add_alternative(f"<div>{body}</div>", subtype="html")
            box.add(message)
            previous, body_before = message_id, body
            written += 1
    box.flush()
    box.close()


def measure(kind: str, location: Path, workspace: Path | None) -> dict:
    """Runs in a child process: one measurement, peak RSS of this process."""
    from citewise import Workspace
    from citewise.connectors import connector_for

    started = time.perf_counter()
    if workspace is None:
        documents = characters = 0
        for item in connector_for(str(location), kind).items():
            if hasattr(item, "load"):
                document = item.load()
                documents += 1
                characters += len(document.text)
        result = {"documents": documents, "characters": characters}
    else:
        with Workspace.open(workspace) as ws:
            report = ws.ingest([location], source=kind)
        result = {
            "documents": report.added + report.updated + report.unchanged,
            "added": report.added,
            "unchanged": report.unchanged,
            "chunks": report.chunks,
            "tokens": report.tokens,
            "failed": len(report.failed),
        }
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def child(kind: str, location: Path, workspace: Path | None = None) -> dict:
    args = [sys.executable, __file__, "--child", kind, str(location)]
    if workspace is not None:
        args.append(str(workspace))
    output = subprocess.run(args, capture_output=True, text=True, check=True, timeout=3600).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, location, *rest = args.child
        print(json.dumps(measure(kind, Path(location), Path(rest[0]) if rest else None)))
        return
    results: dict = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="citewise-connectors-") as tmp:
        root = Path(tmp)
        sources = {
            "slack": (args.messages, make_slack, root / "slack.zip", root / "slack-small.zip"),
            "gmail": (args.mails, make_mbox, root / "mail.mbox", root / "mail-small.mbox"),
        }
        for kind, (count, make, big, small) in sources.items():
            make(big, count)
            make(small, count // 4)
            row = {"items": count, "export_mb": round(big.stat().st_size / 1e6, 1)}
            row["parse_quarter"] = child(kind, small)
            row["parse"] = child(kind, big)
            row["ingest"] = child(kind, big, root / f"ws-{kind}")
            row["reingest"] = child(kind, big, root / f"ws-{kind}")
            row["items_per_s"] = round(count / row["ingest"]["seconds"], 1)
            results[kind] = row
            print(kind, json.dumps(row), flush=True)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def markdown(results: dict) -> str:
    lines = [
        "| export | size | parse only (time / peak RSS) | parse, ¼ export | ingest (time / peak RSS) "
        "| throughput | re-ingest unchanged |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"slack": "Slack, {items:,} messages", "gmail": "Gmail mbox, {items:,} mails"}
    for kind, template in names.items():
        row = results[kind]
        parse, quarter, ingest, again = (
            row["parse"],
            row["parse_quarter"],
            row["ingest"],
            row["reingest"],
        )
        lines.append(
            f"| {template.format(items=row['items'])} | {row['export_mb']} MB | {parse['seconds']} s / "
            f"{parse['peak_rss_mb']} MB | {quarter['seconds']} s / {quarter['peak_rss_mb']} MB | "
            f"{ingest['seconds']} s / {ingest['peak_rss_mb']} MB | {row['items_per_s']:,} items/s, "
            f"{ingest['documents']:,} documents, {ingest['tokens']:,} tokens | {again['seconds']} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
