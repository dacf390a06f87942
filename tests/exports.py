"""Realistic exports, built the way each product lays them out (documented formats)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any


def stored_documents(workspace, collection: str = "default") -> dict:
    """The collection's documents by source."""
    target = workspace.store.collection(collection)
    return {r.source: r for r in workspace.store.list_documents(target.id, limit=10_000)}


TEAM = "T0CITEWISE"
USERS = [
    {
        "id": "U01ALICE",
        "team_id": TEAM,
        "name": "alice",
        "real_name": "Alice Chen",
        "profile": {"real_name": "Alice Chen", "display_name": "Alice Chen"},
    },
    {
        "id": "U02BOB",
        "team_id": TEAM,
        "name": "bob",
        "real_name": "Bob Martin",
        "profile": {"real_name": "Bob Martin", "display_name": ""},
    },
    {
        "id": "U03ZOE",
        "team_id": TEAM,
        "name": "zoé",
        "real_name": "Zoé Dupont",
        "profile": {"real_name": "Zoé Dupont", "display_name": "Zoé"},
    },
    {"id": "B01DEPLOY", "team_id": TEAM, "name": "deploybot", "is_bot": True, "profile": {}},
]
# 2026-01-05 10:02:00 UTC and onwards
T0 = 1767607320


def ts(offset_seconds: float, micro: int = 100) -> str:
    return f"{T0 + int(offset_seconds)}.{micro:06d}"


def slack_messages(variant: str = "v1") -> dict[str, dict[str, list[dict[str, Any]]]]:
    """channel folder → day file → messages."""
    root = ts(0)
    general_day1 = [
        {
            "type": "message",
            "subtype": "channel_join",
            "user": "U03ZOE",
            "ts": ts(-600),
            "text": "<@U03ZOE> has joined the channel",
        },
        {
            "type": "message",
            "user": "U01ALICE",
            "ts": root,
            "thread_ts": root,
            "reply_count": 2,
            "text": "How do we rotate the staging database password? <@U02BOB> you did it last time",
            "edited": {"user": "U01ALICE", "ts": ts(30)} if variant == "v2" else None,
        },
        {
            "type": "message",
            "user": "U02BOB",
            "ts": ts(120),
            "thread_ts": root,
            "parent_user_id": "U01ALICE",
            "text": "Run `vault rotate staging-db` then restart the API pods :tada: "
            "see <https://wiki.example.com/db|the runbook>",
        },
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B01DEPLOY",
            "ts": ts(200),
            "text": "Deploy #412 finished",
        },
        {
            "type": "message",
            "user": "U03ZOE",
            "ts": ts(3 * 3600),
            "text": "Lunch is on the 4th floor today &amp; tomorrow :pizza:",
        },
        {
            "type": "message",
            "user": "U01ALICE",
            "ts": ts(3 * 3600 + 60),
            "text": "Thanks Zoé! <!here> the café closes at 15:00",
        },
    ]
    if variant == "v2":
        general_day1[1]["text"] = (
            "How do we rotate the staging database password every quarter? <@U02BOB> you did it"
        )
    general_day2 = [
        # A reply a day later, to yesterday's thread.
        {
            "type": "message",
            "user": "U01ALICE",
            "ts": ts(86400),
            "thread_ts": root,
            "text": "Done, the new password is in the vault.",
        },
    ]
    random_day = [
        {
            "type": "message",
            "user": "U02BOB",
            "ts": ts(5000),
            "text": "The office plants are watered on Fridays by the facilities team.",
        },
    ]
    design_day = [
        {
            "type": "message",
            "user": "U03ZOE",
            "ts": ts(7000),
            "thread_ts": ts(7000),
            "text": "Logo v3 uses the teal #0F766E as primary colour",
            "files": [{"id": "F1", "name": "logo-v3.png", "title": "Logo v3"}],
        },
    ]
    dm_day = [
        {
            "type": "message",
            "user": "U01ALICE",
            "ts": ts(9000),
            "text": "Can you review my expense report by Thursday?",
        },
    ]
    export = {
        "general": {"2026-01-05.json": general_day1, "2026-01-06.json": general_day2},
        "random": {"2026-01-05.json": random_day},
        "design": {"2026-01-05.json": design_day},
        "D01AB": {"2026-01-05.json": dm_day},
    }
    if variant == "v2":
        del export["random"]  # the random channel's only message was deleted
        export["general"]["2026-01-07.json"] = [
            {
                "type": "message",
                "user": "U02BOB",
                "ts": ts(2 * 86400),
                "text": "Reminder: the quarterly security review is on March 3rd.",
            },
        ]
    return export


def zip_folder(folder: Path, archive: Path) -> Path:
    """``archive``: a zip of the files under ``folder``, as Slack's export zips them."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())
    return archive


def make_slack_export(
    root: Path, variant: str = "v1", broken_day: bool = False, as_zip: bool = True
) -> Path:
    folder = root / f"slack-{variant}"
    folder.mkdir(parents=True, exist_ok=True)
    channels = [
        {
            "id": "C01GENERAL",
            "name": "general",
            "created": T0 - 86400,
            "creator": "U01ALICE",
            "members": ["U01ALICE", "U02BOB", "U03ZOE"],
            "topic": {"value": "Company-wide"},
        },
        {
            "id": "C02RANDOM",
            "name": "random",
            "created": T0 - 86400,
            "creator": "U02BOB",
            "members": ["U01ALICE", "U02BOB"],
        },
    ]
    groups = [
        {
            "id": "G01DESIGN",
            "name": "design",
            "created": T0,
            "creator": "U03ZOE",
            "members": ["U03ZOE", "U01ALICE"],
            "is_private": True,
        }
    ]
    dms = [{"id": "D01AB", "created": T0, "members": ["U01ALICE", "U02BOB"]}]
    files = {
        "users.json": USERS,
        "channels.json": channels,
        "groups.json": groups,
        "dms.json": dms,
        "mpims.json": [],
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    for channel, days in slack_messages(variant).items():
        (folder / channel).mkdir(exist_ok=True)
        for day, messages in days.items():
            cleaned = [{k: v for k, v in m.items() if v is not None} for m in messages]
            (folder / channel / day).write_text(
                json.dumps(cleaned, ensure_ascii=False), encoding="utf-8"
            )
    if broken_day:
        (folder / "design" / "2026-01-06.json").write_text(
            '[{"type": "message", "ts": ', encoding="utf-8"
        )
    if not as_zip:
        return folder
    return zip_folder(folder, root / f"Citewise Slack export Jan 5 2026 - {variant}.zip")


def _mail(
    subject: str,
    sender: str,
    to: str,
    date: str,
    body: str,
    message_id: str,
    thrid: str | None = None,
    labels: str = "Inbox",
    reply_to: str | None = None,
    html: str | None = None,
    attachments: list[tuple[str, bytes, str]] = (),
):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Delivered-To"] = "me@example.com"
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = f"<{message_id}>"
    if thrid:
        message["X-GM-THRID"] = thrid
    message["X-Gmail-Labels"] = labels
    if reply_to:
        message["In-Reply-To"] = f"<{reply_to}>"
        message["References"] = f"<{reply_to}>"
    message.set_content(body)
    if html:
        message.add_alternative(html, subtype="html")
    for name, payload, mime in attachments:
        maintype, subtype = mime.split("/")
        message.add_attachment(payload, maintype=maintype, subtype=subtype, filename=name)
    return message


BAD_CHARSET = b"""From: Bob Martin <bob@example.com>
To: me@example.com
Delivered-To: me@example.com
Subject: Re: Invoice 2231
Date: Tue, 06 Jan 2026 09:00:00 +0000
Message-ID: <bad-charset@example.com>
In-Reply-To: <invoice-1@example.com>
References: <invoice-1@example.com>
X-Gmail-Labels: Inbox
MIME-Version: 1.0
Content-Type: text/plain; charset="x-no-such-charset"
Content-Transfer-Encoding: 8bit

Paid \xff\xfe in full.
"""


def make_mbox(root: Path, variant: str = "v1") -> Path:
    """A Takeout-style mbox: Gmail thread ids, a References-only thread, HTML with quotes,
    attachments (one broken), Spam, and a message in an unknown charset."""
    import mailbox

    from conftest import make_pdf

    root.mkdir(parents=True, exist_ok=True)
    agenda = make_pdf(
        root / "agenda.pdf",
        ["Day one: strategy.", "Day two: the boat trip leaves at 9:15."],
        title="Offsite agenda",
    )
    path = root / f"All mail Including Spam and Trash {variant}.mbox"
    path.unlink(missing_ok=True)
    box = mailbox.mbox(path)
    thread = "1789000000000000001"
    box.add(
        _mail(
            "Q3 offsite venue",
            "Alice Chen <alice@example.com>",
            "team@example.com",
            "Mon, 05 Jan 2026 10:00:00 +0000",
            "Hi all, the Q3 offsite will be at the Lakeside Lodge in Annecy, 14-16 September.",
            "offsite-1@example.com",
            thread,
            "Inbox,Important",
        )
    )
    box.add(
        _mail(
            "Re: Q3 offsite venue",
            "Bob Martin <bob@example.com>",
            "team@example.com",
            "Mon, 05 Jan 2026 11:30:00 +0000",
            "Great, I booked the coach from Lyon.\n\nOn Mon, Jan 5, 2026 at 10:00 Alice Chen wrote:\n"
            "> Hi all, the Q3 offsite will be at the Lakeside Lodge in Annecy, 14-16 September.",
            "offsite-2@example.com",
            thread,
            "Inbox",
            reply_to="offsite-1@example.com",
            html="<div>Great, I booked the coach from Lyon.</div><div class='gmail_quote'>"
            "On Mon Alice wrote:<blockquote>Hi all, the Q3 offsite will be at the "
            "Lakeside Lodge in Annecy</blockquote></div>",
        )
    )
    attachments = [
        ("agenda.pdf", agenda.read_bytes(), "application/pdf"),
        ("scan.pdf", b"%PDF-1.4 truncated", "application/pdf"),
        ("photo.jpg", b"\xff\xd8\xff\xe0 jpeg", "image/jpeg"),
    ]
    box.add(
        _mail(
            "Re: Q3 offsite venue",
            "Zoé Dupont <zoe@example.com>",
            "team@example.com",
            "Tue, 06 Jan 2026 08:15:00 +0000",
            "Agenda attached — café at 8:30 each morning.",
            "offsite-3@example.com",
            thread,
            "Inbox",
            reply_to="offsite-2@example.com",
            attachments=attachments,
        )
    )
    # A thread Gmail ids are missing from (an older export): chained by References.
    box.add(
        _mail(
            "Invoice 2231",
            "Accounts <accounts@vendor.example>",
            "me@example.com",
            "Mon, 05 Jan 2026 15:00:00 +0000",
            "Invoice 2231 for 1,240 EUR is due on 31 January.",
            "invoice-1@example.com",
        )
    )
    box.add(mailbox.mboxMessage(BAD_CHARSET))
    box.add(
        _mail(
            "You won a prize",
            "spam@lottery.example",
            "me@example.com",
            "Mon, 05 Jan 2026 12:00:00 +0000",
            "Claim your prize now, the code is WIN-777.",
            "spam-1@example.com",
            "1789000000000000009",
            "Spam",
        )
    )
    if variant == "v2":
        box.add(
            _mail(
                "Re: Q3 offsite venue",
                "Alice Chen <alice@example.com>",
                "team@example.com",
                "Wed, 07 Jan 2026 09:00:00 +0000",
                "Update: dinner on the 15th is at 19:30.",
                "offsite-4@example.com",
                thread,
                "Inbox",
                reply_to="offsite-3@example.com",
            )
        )
    box.flush()
    box.close()
    return path


WIKI, ONCALL, TASKS, LOGIN, RECIPES = ("1" * 32, "2" * 32, "3" * 32, "4" * 32, "5" * 32)


def make_notion_export(
    root: Path, variant: str = "v1", broken_csv: bool = False, nested_zip: bool = True
) -> Path:
    """The layout of Notion's "Markdown & CSV" export."""
    from urllib.parse import quote

    from conftest import make_pdf

    folder = root / f"notion-{variant}"
    wiki_dir = folder / f"Engineering Wiki {WIKI}"
    oncall_dir = wiki_dir / f"On-call {ONCALL}"
    tasks_dir = wiki_dir / f"Tasks {TASKS}"
    for directory in (oncall_dir, tasks_dir):
        directory.mkdir(parents=True, exist_ok=True)
    link = quote(f"Engineering Wiki {WIKI}/On-call {ONCALL}.md")
    (folder / f"Engineering Wiki {WIKI}.md").write_text(
        f"# Engineering Wiki\n\nWelcome to the wiki. See [the on-call guide]({link}) and "
        f"[Tasks]({quote(f'Engineering Wiki {WIKI}/Tasks {TASKS}.csv')}).\n",
        encoding="utf-8",
    )
    minutes = "15" if variant == "v1" else "10"
    (wiki_dir / f"On-call {ONCALL}.md").write_text(
        f"# On-call\n\nThe rota changes every Monday.\n\n## Escalation\n\n"
        f"Page the secondary engineer after {minutes} minutes without an acknowledgement.\n",
        encoding="utf-8",
    )
    make_pdf(
        oncall_dir / "pager-runbook.pdf",
        ["Pager runbook", "Reset the pager with the red button."],
        title="Pager runbook",
    )
    rows = [
        ("Fix login bug", "Done", "Alice", "2026-01-10"),
        ("Migrate to Postgres 17", "In progress", "Bob", "2026-02-01"),
    ]
    hidden = [("Café menu ☕", "Backlog", "Zoé", "")]
    header = "Name,Status,Owner,Due\n"
    (wiki_dir / f"Tasks {TASKS}.csv").write_text(
        header + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8"
    )
    all_rows = header + "".join(",".join(r) + "\n" for r in rows + hidden)
    (wiki_dir / f"Tasks {TASKS}_all.csv").write_bytes(
        all_rows.encode("utf-8") if not broken_csv else b"Name,Status\n\xff\xfe broken,\x00\n"
    )
    if variant == "v1":
        (tasks_dir / f"Fix login bug {LOGIN}.md").write_text(
            "# Fix login bug\n\nStatus: Done\nOwner: Alice\n\n"
            "The session cookie lacked SameSite=Lax, so Safari dropped it.\n",
            encoding="utf-8",
        )
        (folder / f"Recipes {RECIPES}.md").write_text(
            "# Recipes\n\nThe team's tarte tatin uses six apples.\n", encoding="utf-8"
        )
    if not nested_zip:
        return folder
    inner = root / f"Export-{variant}-Part-1.zip"
    with zipfile.ZipFile(inner, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())
    outer = root / f"Export-{variant}.zip"
    with zipfile.ZipFile(outer, "w") as out:
        out.write(inner, inner.name)
    return outer


DESIGN, RFC, PROJECTS, CAMPAIGN, SPRINT_TASKS, BOARD, BOARD_VIEW = (
    "d1" * 16,
    "e2" * 16,
    "a3" * 16,
    "b4" * 16,
    "c5" * 16,
    "f6" * 16,
    "a7" * 16,
)
SPRINT_ROWS = [
    ("Write the brief", "Done", "Marketing campaign"),
    ("Book the photographer", "In progress", "Marketing campaign"),
    ("Pick launch date", "Backlog", "Q3 (draft) plan"),
]


def make_notion_projects_export(root: Path) -> Path:
    """A Notion "Markdown & CSV" export of a product team: relation properties written
    as "Title (URL-encoded path)", a database shown again as a linked view on another
    page, images attached to pages, and headings Notion writes in bold."""
    from urllib.parse import quote

    folder = root / "notion-projects"
    design = folder / f"Design {DESIGN}"
    rfc_dir = design / f"Product Design RFC {RFC}"
    projects = folder / f"Projects {PROJECTS}"
    board = folder / f"Sprint board {BOARD}"
    for directory in (rfc_dir, projects, board):
        directory.mkdir(parents=True, exist_ok=True)
    (folder / f"Design {DESIGN}.md").write_text(
        "# Design\n\nWhere the design team keeps its RFCs.\n", encoding="utf-8"
    )
    (design / f"Product Design RFC {RFC}.md").write_text(
        "# Product Design RFC\n\n## **📊 Research**\n\n"
        "We interviewed twelve customers about the onboarding flow.\n\n"
        f"![Whiteboard]({quote(f'Product Design RFC {RFC}/whiteboard.png')})\n",
        encoding="utf-8",
    )
    (rfc_dir / "whiteboard.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (design / "mockup.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    # Projects: a database whose rows are pages, one of them with a relation back to Tasks.
    campaign = quote(f"Projects {PROJECTS}/Marketing campaign {CAMPAIGN}.md")
    draft = quote(f"Projects {PROJECTS}/Q3 (draft) plan {'9' * 32}.md", safe="/()")
    header = "Name,Status,Owner\n"
    (folder / f"Projects {PROJECTS}.csv").write_text(
        header + "Marketing campaign,Active,Alice\n", encoding="utf-8"
    )
    (folder / f"Projects {PROJECTS}_all.csv").write_text(
        header + "Marketing campaign,Active,Alice\nQ3 (draft) plan,Idea,Bob\n", encoding="utf-8"
    )
    rfc_link = quote(f"../Design {DESIGN}/Product Design RFC {RFC}.md")
    (projects / f"Marketing campaign {CAMPAIGN}.md").write_text(
        "# Marketing campaign\n\nStatus: Active\nOwner: Alice\n"
        f"Design RFC: Product Design RFC ({rfc_link})\n\n"
        "The spring campaign launches with the new catalogue.\n",
        encoding="utf-8",
    )
    # Tasks: rows without pages; its Project column is a relation.
    rows = [
        f'{name},{status},"{project} (../{campaign if project.startswith("Marketing") else draft})"'
        for name, status, project in SPRINT_ROWS
    ]
    tasks = "Name,Status,Project\n" + "".join(row + "\n" for row in rows)
    (folder / f"Tasks {SPRINT_TASKS}.csv").write_text(tasks, encoding="utf-8")
    (folder / f"Tasks {SPRINT_TASKS}_all.csv").write_text(tasks, encoding="utf-8")
    # The sprint board page shows Tasks as a linked view: Notion exports its rows again,
    # under the view's own id, once as the view and once with every row.
    (folder / f"Sprint board {BOARD}.md").write_text(
        "# Sprint board\n\nThis sprint's tasks.\n", encoding="utf-8"
    )
    (board / f"Tasks {BOARD_VIEW}.csv").write_text(tasks, encoding="utf-8")
    (board / f"Tasks {BOARD_VIEW}_all.csv").write_text(tasks, encoding="utf-8")
    return folder


def make_xlsx(path: Path, rows: list[tuple]) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Budget 2026"
    sheet.append(["Team", "Quarter", "Amount (EUR)", "Owner"])
    for row in rows:
        sheet.append(list(row))
    other = workbook.create_sheet("Notes")
    other.append(["Note"])
    other.append(["Numbers are approved by the CFO in March."])
    workbook.save(path)
    return path


def make_pptx(path: Path, slides: list[tuple[str, str, str]]) -> Path:
    import pptx

    deck = pptx.Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(path)
    return path


def make_drive_takeout(
    root: Path, variant: str = "v1", parts: int = 2, broken: bool = False
) -> Path:
    """Takeout parts (takeout-…-001.zip, -002.zip) holding Takeout/Drive/…"""
    from conftest import make_docx, make_pdf

    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"staging-{variant}"
    drive = staging / "Takeout" / "Drive"
    (drive / "Finance").mkdir(parents=True, exist_ok=True)
    (drive / "Sales").mkdir(parents=True, exist_ok=True)
    amount = 120000 if variant == "v1" else 135000
    make_xlsx(
        drive / "Finance" / "Budget.xlsx",
        [("Platform", "Q1", amount, "Alice"), ("Design", "Q1", 40000, "Zoé")],
    )
    make_pptx(
        drive / "Sales" / "Kickoff deck.pptx",
        [
            ("Kickoff 2026", "Welcome", ""),
            ("Roadmap", "Launch the mobile app in May", "Stress the May date."),
        ],
    )
    make_docx(drive / "Travel policy.docx")
    if variant == "v1":
        make_pdf(drive / "Safety.pdf", ["Safety first.", "Fire exits are on every floor."])
    (drive / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    (staging / "Takeout" / "archive_browser.html").write_text("<html>Takeout</html>")
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    archives = []
    for n in range(parts):
        archive = root / f"takeout-20260105T101010Z-{variant}-{n + 1:03d}.zip"
        with zipfile.ZipFile(archive, "w") as out:
            for path in files[n::parts]:
                out.write(path, path.relative_to(staging).as_posix())
        archives.append(archive)
    if broken:
        archives[-1].write_bytes(archives[-1].read_bytes()[:100])
    return archives[0]


def make_slack_dated_export(root: Path, name: str, days: dict[str, list[str]]) -> Path:
    """A Slack export of some dates (the export dialog's date range): #general only, each
    text a message of its day, the first at noon UTC and the next an hour later (so each
    is a conversation window, a document, of its own)."""
    from datetime import datetime

    folder = root / name
    (folder / "general").mkdir(parents=True, exist_ok=True)
    channels = [
        {
            "id": "C01GENERAL",
            "name": "general",
            "created": T0 - 86400,
            "creator": "U01ALICE",
            "members": ["U01ALICE", "U02BOB"],
        }
    ]
    listings = {"users.json": USERS, "channels.json": channels, "groups.json": []}
    listings.update({"dms.json": [], "mpims.json": []})
    for file, content in listings.items():
        (folder / file).write_text(json.dumps(content), encoding="utf-8")
    for day, texts in days.items():
        noon = int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp())
        messages = [
            {"type": "message", "user": "U01ALICE", "ts": f"{noon + 3600 * i}.000100", "text": t}
            for i, t in enumerate(texts)
        ]
        (folder / "general" / f"{day}.json").write_text(json.dumps(messages), encoding="utf-8")
    return zip_folder(folder, root / f"{name}.zip")


def make_eml(
    path: Path,
    subject: str,
    body: str | None,
    message_id: str,
    reply_to: str | None = None,
    html: str | None = None,
    attachments: list[tuple[str, bytes, str]] = (),
    sender: str = "Alice Chen <alice@example.com>",
    date: str = "Mon, 05 Jan 2026 10:00:00 +0000",
) -> Path:
    """One message as a mail client saves it (.eml): no Gmail headers, no 'From ' line;
    ``body`` None for an HTML-only message."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Team <team@example.com>"
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = f"<{message_id}>"
    if reply_to:
        message["In-Reply-To"] = f"<{reply_to}>"
        message["References"] = f"<{reply_to}>"
    if body is not None:
        message.set_content(body)
        if html:
            message.add_alternative(html, subtype="html")
    elif html:
        message.set_content(html, subtype="html")
    for name, payload, mime in attachments:
        maintype, subtype = mime.split("/")
        message.add_attachment(payload, maintype=maintype, subtype=subtype, filename=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(message))
    return path


def make_mht(path: Path, title: str, paragraphs: list[str]) -> Path:
    """A page as a browser saves it "as a single file" (.mht/.mhtml): multipart/related,
    the HTML first and quoted-printable, then an image the page shows."""
    import base64
    import quopri
    from email.header import Header

    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    html = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
        '<style>p { color: #333; }</style></head><body><nav><a href="/">Home</a></nav>'
        f'<main><h1>{title}</h1>{body}<img src="https://intranet.example.com/logo.png"></main>'
        "</body></html>"
    )
    boundary = "----MultipartBoundary--citewiseTest0123456789----"
    encoded = quopri.encodestring(html.encode("utf-8")).decode("ascii")
    png = base64.encodebytes(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode("ascii")
    parts = [
        "From: <Saved by Blink>",
        f"Snapshot-Content-Location: https://intranet.example.com/{path.stem}",
        f"Subject: {Header(title, 'utf-8').encode()}",  # RFC 2047, as browsers write it
        "Date: Mon, 5 Jan 2026 10:00:00 -0000",
        "MIME-Version: 1.0",
        "Content-Type: multipart/related;",
        '\ttype="text/html";',
        f'\tboundary="{boundary}"',
        "",
        "",
        f"--{boundary}",
        "Content-Type: text/html",
        "Content-ID: <frame-0@mhtml.blink>",
        "Content-Transfer-Encoding: quoted-printable",
        f"Content-Location: https://intranet.example.com/{path.stem}",
        "",
        encoded,
        f"--{boundary}",
        "Content-Type: image/png",
        "Content-Transfer-Encoding: base64",
        "Content-Location: https://intranet.example.com/logo.png",
        "",
        png,
        f"--{boundary}--",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join(parts).encode("ascii"))
    return path
