"""Realistic exports, built the way each product lays them out (documented formats)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

TEAM = "T0CITEWISE"
USERS = [
    {"id": "U01ALICE", "team_id": TEAM, "name": "alice", "real_name": "Alice Chen",
     "profile": {"real_name": "Alice Chen", "display_name": "Alice Chen"}},
    {"id": "U02BOB", "team_id": TEAM, "name": "bob", "real_name": "Bob Martin",
     "profile": {"real_name": "Bob Martin", "display_name": ""}},
    {"id": "U03ZOE", "team_id": TEAM, "name": "zoé", "real_name": "Zoé Dupont",
     "profile": {"real_name": "Zoé Dupont", "display_name": "Zoé"}},
    {"id": "B01DEPLOY", "team_id": TEAM, "name": "deploybot", "is_bot": True, "profile": {}},
]  # fmt: skip
# 2026-01-05 10:02:00 UTC and onwards
T0 = 1767607320


def ts(offset_seconds: float, micro: int = 100) -> str:
    return f"{T0 + int(offset_seconds)}.{micro:06d}"


def slack_messages(variant: str = "v1") -> dict[str, dict[str, list[dict[str, Any]]]]:
    """channel folder → day file → messages."""
    root = ts(0)
    general_day1 = [
        {"type": "message", "subtype": "channel_join", "user": "U03ZOE", "ts": ts(-600),
         "text": "<@U03ZOE> has joined the channel"},
        {"type": "message", "user": "U01ALICE", "ts": root, "thread_ts": root, "reply_count": 2,
         "text": "How do we rotate the staging database password? <@U02BOB> you did it last time",
         "edited": {"user": "U01ALICE", "ts": ts(30)} if variant == "v2" else None},
        {"type": "message", "user": "U02BOB", "ts": ts(120), "thread_ts": root,
         "parent_user_id": "U01ALICE",
         "text": "Run `vault rotate staging-db` then restart the API pods :tada: "
                 "see <https://wiki.example.com/db|the runbook>"},
        {"type": "message", "subtype": "bot_message", "bot_id": "B01DEPLOY", "ts": ts(200),
         "text": "Deploy #412 finished"},
        {"type": "message", "user": "U03ZOE", "ts": ts(3 * 3600),
         "text": "Lunch is on the 4th floor today &amp; tomorrow :pizza:"},
        {"type": "message", "user": "U01ALICE", "ts": ts(3 * 3600 + 60),
         "text": "Thanks Zoé! <!here> the café closes at 15:00"},
    ]  # fmt: skip
    if variant == "v2":
        general_day1[1]["text"] = (
            "How do we rotate the staging database password every quarter? <@U02BOB> you did it"
        )
    general_day2 = [
        # A reply a day later, to yesterday's thread.
        {"type": "message", "user": "U01ALICE", "ts": ts(86400), "thread_ts": root,
         "text": "Done, the new password is in the vault."},
    ]  # fmt: skip
    random_day = [
        {"type": "message", "user": "U02BOB", "ts": ts(5000),
         "text": "The office plants are watered on Fridays by the facilities team."},
    ]  # fmt: skip
    design_day = [
        {"type": "message", "user": "U03ZOE", "ts": ts(7000), "thread_ts": ts(7000),
         "text": "Logo v3 uses the teal #0F766E as primary colour", "files": [
             {"id": "F1", "name": "logo-v3.png", "title": "Logo v3"}]},
    ]  # fmt: skip
    dm_day = [
        {"type": "message", "user": "U01ALICE", "ts": ts(9000),
         "text": "Can you review my expense report by Thursday?"},
    ]  # fmt: skip
    export = {
        "general": {"2026-01-05.json": general_day1, "2026-01-06.json": general_day2},
        "random": {"2026-01-05.json": random_day},
        "design": {"2026-01-05.json": design_day},
        "D01AB": {"2026-01-05.json": dm_day},
    }
    if variant == "v2":
        del export["random"]  # the random channel's only message was deleted
        export["general"]["2026-01-07.json"] = [
            {"type": "message", "user": "U02BOB", "ts": ts(2 * 86400),
             "text": "Reminder: the quarterly security review is on March 3rd."},
        ]  # fmt: skip
    return export


def make_slack_export(root: Path, variant: str = "v1", broken_day: bool = False,
                      as_zip: bool = True) -> Path:  # fmt: skip
    folder = root / f"slack-{variant}"
    folder.mkdir(parents=True, exist_ok=True)
    channels = [
        {"id": "C01GENERAL", "name": "general", "created": T0 - 86400, "creator": "U01ALICE",
         "members": ["U01ALICE", "U02BOB", "U03ZOE"], "topic": {"value": "Company-wide"}},
        {"id": "C02RANDOM", "name": "random", "created": T0 - 86400, "creator": "U02BOB",
         "members": ["U01ALICE", "U02BOB"]},
    ]  # fmt: skip
    groups = [{"id": "G01DESIGN", "name": "design", "created": T0, "creator": "U03ZOE",
               "members": ["U03ZOE", "U01ALICE"], "is_private": True}]  # fmt: skip
    dms = [{"id": "D01AB", "created": T0, "members": ["U01ALICE", "U02BOB"]}]
    files = {"users.json": USERS, "channels.json": channels, "groups.json": groups,
             "dms.json": dms, "mpims.json": []}  # fmt: skip
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    for channel, days in slack_messages(variant).items():
        (folder / channel).mkdir(exist_ok=True)
        for day, messages in days.items():
            cleaned = [{k: v for k, v in m.items() if v is not None} for m in messages]
            (folder / channel / day).write_text(json.dumps(cleaned, ensure_ascii=False), encoding="utf-8")
    if broken_day:
        (folder / "design" / "2026-01-06.json").write_text('[{"type": "message", "ts": ', encoding="utf-8")
    if not as_zip:
        return folder
    archive = root / f"Citewise Slack export Jan 5 2026 - {variant}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())
    return archive
