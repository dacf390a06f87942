"""Chat archives: Discord (DiscordChatExporter), Telegram Desktop, WhatsApp and Facebook
Messenger — detection, messages with author and time, locations and links, participants as
access lists, incremental sync and broken input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from chat_exports import (
    DISCORD_USERS,
    DM_CHANNEL,
    ENGINEERING,
    GUILD,
    HIKING,
    NEWS,
    NNBSP,
    OWNER_ID,
    TG_BOB,
    make_discord_export,
    make_messenger_export,
    make_telegram_export,
    make_whatsapp_exports,
    mojibake,
)
from citewise.access import user_caller
from citewise.connectors import detect_source
from citewise.connectors.chat import ChatMessage, group_messages, name_alias
from citewise.connectors.messenger import unmojibake
from citewise.connectors.telegram import flatten
from citewise.connectors.whatsapp import date_order, header
from exports import stored_documents

CHANNEL = f"discord://{GUILD}/{ENGINEERING}"
QUESTION = f"{CHANNEL}/1300000000000000010"


def counts(report) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.deleted


def text_of(workspace, source: str) -> str:
    return workspace.store.document_text(stored_documents(workspace)[source].id)


def reader(workspace, email: str, *aliases: str):
    workspace.store.add_user(email)
    for alias in aliases:
        workspace.store.add_alias(email, alias)
    return user_caller(workspace.store, email)


# -- Discord --------------------------------------------------------------------------------


def test_discord_messages_replies_and_links(workspace, tmp_path: Path) -> None:
    export = make_discord_export(tmp_path)
    assert detect_source(str(export)) == "discord"
    assert detect_source(str(next(export.glob("*engineering*.json")))) == "discord"
    report = workspace.ingest([export])
    assert report.failed == [] and report.added == 3
    text = text_of(workspace, QUESTION)
    # Every message with its author and time; the reply a day later joins the question's
    # conversation; the bot and the join are gone.
    assert "Alice Chen (10:02): Which port does the staging gateway listen on?" in text
    assert "bobm (10:04): The staging gateway listens on port 8443" in text
    assert "Carol (2026-01-06 09:00, replying to Alice Chen 10:02): Correction:" in text
    assert "Build #88" not in text and "Joined the server" not in text
    hit = workspace.search("which port does the staging gateway listen on", k=3)[0]
    assert hit.source == QUESTION
    assert hit.location.startswith("#engineering > conversation 2026-01-05 10:02 by Alice Chen")
    assert hit.url == f"https://discord.com/channels/{GUILD}/{ENGINEERING}/1300000000000000010"
    assert hit.metadata["created_at"] == "2026-01-05T10:02:00.123000+01:00"
    assert hit.metadata["guild"] == "Citewise Lab" and hit.metadata["channel"] == "#engineering"
    lunch = workspace.search("lunch order closes at noon", k=1)[0]
    assert "Zoé (14:30): The lunch order closes at noon tomorrow 🍕 [file: menu.pdf]" in lunch.text
    dm = workspace.search("badge number for the datacenter", k=1)[0]
    assert dm.source == f"discord://0/{DM_CHANNEL}/1310000000000000001"
    assert dm.url == f"https://discord.com/channels/@me/{DM_CHANNEL}/1310000000000000001"
    assert dm.heading_path[0] == "DM bobm"


def test_discord_newer_export_updates_only_what_changed(workspace, tmp_path: Path) -> None:
    assert workspace.ingest([make_discord_export(tmp_path, "v1")]).added == 3
    # v2: an edit (the port), a delete (the lunch message), an add (the retro).
    second = workspace.ingest([make_discord_export(tmp_path, "v2")])
    assert counts(second) == (1, 1, 1, 1)
    text = text_of(workspace, QUESTION)
    assert "bobm (10:04) (edited): The staging gateway listens on port 9443" in text
    assert not any("1300000000000000020" in s for s in stored_documents(workspace))
    again = workspace.ingest([make_discord_export(tmp_path, "v2")])
    assert counts(again) == (0, 0, 3, 0)


def test_discord_bad_input_is_named_and_keeps_the_channel(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_discord_export(tmp_path, "v1")])
    export = make_discord_export(tmp_path / "b", "v2", broken=True)
    (export / "notes.json").write_text('{"guild": {"id": "1", "name": "x"}, "channel": {')
    report = workspace.ingest([export], source="discord")
    failures = {f.source: f.reason for f in report.failed}
    [message] = [s for s in failures if s.endswith("#message 1300000000000000013")]
    assert "engineering" in message and "bad timestamp" in failures[message]
    assert "malformed Discord export" in failures[str(export / "notes.json")]
    # The channel with a bad message was not read whole: nothing in it is deleted.
    assert report.deleted == 0 and report.added == 1 and report.updated == 1


# -- Telegram -------------------------------------------------------------------------------


def test_telegram_full_export(workspace, tmp_path: Path) -> None:
    export = make_telegram_export(tmp_path)
    assert detect_source(str(export)) == "telegram"
    assert detect_source(str(export / "result.json")) == "telegram"
    report = workspace.ingest([export])
    assert report.failed == [] and report.added == 4
    hit = workspace.search("wifi password for the cabin", k=1)[0]
    assert hit.source == f"telegram://{TG_BOB}/10"
    # Entities flattened; the machine's wall clock (UTC+1) as the app showed it.
    assert "Bob Martin (11:02): The wifi password for the cabin is pine-cone-42." in hit.text
    assert hit.location.startswith("DM Bob Martin > conversation 2026-01-05 11:02 by Bob Martin")
    assert hit.metadata["created_at"] == "2026-01-05T11:02:00+01:00"
    assert hit.url is None  # a personal chat has no link
    hike = workspace.search("hike to Lac Blanc cable car", k=1)[0]
    assert hike.source == f"telegram://{HIKING}/2"
    assert hike.url == f"https://t.me/c/{HIKING}/2"
    assert "the map (https://maps.example.com/lac-blanc)" in hike.text
    assert "Alice Chen (12:05): [photo]" in hike.text
    news = workspace.search("offline transcription of voice notes", k=1)[0]
    assert news.source == f"telegram://{NEWS}/7"


def test_telegram_single_chat_and_sync(workspace, tmp_path: Path) -> None:
    single = make_telegram_export(tmp_path, single_chat=True)
    assert detect_source(str(single)) == "telegram"
    assert workspace.ingest([single]).added == 2
    first = workspace.ingest([make_telegram_export(tmp_path, "v1")])
    assert counts(first) == (2, 0, 2, 0)  # the account's export holds the same group
    # v2: Carol's message edited, Dave's deleted, a new one added.
    second = workspace.ingest([make_telegram_export(tmp_path, "v2")])
    assert counts(second) == (1, 1, 2, 1)
    text = text_of(workspace, f"telegram://{HIKING}/2")
    assert (
        "Carol (12:00) (edited): The hike to Lac Blanc starts at the Flégère cable car at 7:30"
        in text
    )
    assert f"telegram://{HIKING}/4" not in stored_documents(workspace)


def test_telegram_bad_input(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_telegram_export(tmp_path, "v1")])
    broken = make_telegram_export(tmp_path / "b", "v2", broken=True)
    report = workspace.ingest([broken])
    [failure] = report.failed
    assert failure.source.endswith(f"result.json#chat {HIKING} message 99")
    assert "bad date" in failure.reason
    assert report.deleted == 0  # the hiking chat was not read whole
    garbage = tmp_path / "g" / "result.json"
    garbage.parent.mkdir()
    garbage.write_text('{"about": "Here is the data you requested.", "chats": {"list": [', "utf-8")
    report = workspace.ingest([garbage])
    assert len(report.failed) == 1 and "line 1 column" in report.failed[0].reason


# -- WhatsApp -------------------------------------------------------------------------------


def test_whatsapp_us_and_german_locales(workspace, tmp_path: Path) -> None:
    chats = make_whatsapp_exports(tmp_path / "w")
    for chat in chats.values():
        assert detect_source(str(chat)) == "whatsapp"
    assert detect_source(str(tmp_path / "w")) == "whatsapp"  # a folder of chats
    report = workspace.ingest([tmp_path / "w"])
    assert report.failed == [] and report.added == 6
    # US, 12-hour with U+202F before PM: a multi-line message kept whole.
    hit = workspace.search("chalet door code", k=1)[0]
    assert hit.source == "whatsapp://Bob Martin/2025-12-31T21:15"
    assert (
        "Alice Chen (21:16): Yes! The chalet door code is 5-1-9-7. Parking is behind the "
        "bakery, not in front of the church." in hit.text
    )
    assert "Bob Martin (21:17): [media omitted]" in hit.text
    assert "end-to-end encrypted" not in hit.text
    assert hit.location.startswith("Bob Martin > conversation 2025-12-31 21:15 by Bob Martin")
    assert (
        workspace.search("train to Annecy", k=1)[0].metadata["created_at"] == "2026-01-02T08:05:00"
    )
    # iOS, German: day first, seconds, U+200E marks; the photo, not the system lines.
    strudel = workspace.search("Apfelstrudel 180 Grad", k=1)[0]
    assert strudel.source == "whatsapp://Familie/2025-12-31T21:16:03"
    assert "Oma Gisela (21:19): Zwei Teelöffel Zimt, und eine Prise Muskat." in strudel.text
    assert "Oma Gisela (21:16): [file: 00000012-PHOTO-2025-12-31.jpg]" in strudel.text
    assert "Gruppenbeschreibung" not in strudel.text and "verschlüsselt" not in strudel.text
    meeting = workspace.search("Familientreffen Tante Ute", k=1)[0]
    assert meeting.metadata["created_at"] == "2026-01-13T18:30:00"  # 13.01: the 13th of January
    assert meeting.metadata["date_order"] == "DMY"


def test_whatsapp_sync_and_a_bad_line(workspace, tmp_path: Path) -> None:
    assert workspace.ingest(list(make_whatsapp_exports(tmp_path / "a").values())).added == 6
    v2 = make_whatsapp_exports(tmp_path / "b", "v2")
    second = workspace.ingest(list(v2.values()))
    assert counts(second) == (1, 1, 4, 1)
    assert "(edited): I booked the 9:10 train" in text_of(
        workspace, "whatsapp://Bob Martin/2026-01-02T08:05"
    )
    bad = make_whatsapp_exports(tmp_path / "c", "v2", bad_line=True)["uk"]
    report = workspace.ingest([bad])
    [failure] = report.failed
    assert failure.source == f"{bad}:2" and "unreadable message date or time" in failure.reason
    assert "45/13/2025" in failure.reason
    assert report.unchanged == 1 and report.deleted == 0


@pytest.mark.parametrize(
    ("lines", "order"),
    [
        (["12/31/23, 9:15 PM - A: x"], "MDY"),
        (["31/12/2023, 21:15 - A: x"], "DMY"),
        (["[31.12.23, 21:15:42] A: x"], "DMY"),
        (["[12/31/23, 9:15:42 PM] A: x"], "MDY"),
        # All fields 12 or less: time never runs backwards under the right order.
        (["01/02/24, 10:00 - A: x", "01/03/24, 10:00 - A: y", "02/01/24, 10:00 - A: z"], "MDY"),
        (["01/02/24, 10:00 - A: x", "02/02/24, 10:00 - A: y", "01/03/24, 10:00 - A: z"], "DMY"),
        # Nothing tells: a 12-hour clock is American.
        ([f"1/2/24, 10:00{NNBSP}AM - A: x"], "MDY"),
        (["1/2/24, 10:00 - A: x"], "DMY"),
    ],
)
def test_whatsapp_date_order(lines: list[str], order: str) -> None:
    headers = [header(line) for line in lines]
    assert all(headers)
    assert date_order([h for h in headers if h]) == order


def test_whatsapp_file_that_is_no_chat(workspace, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Shopping list\n12 eggs\n", "utf-8")
    assert detect_source(str(notes)) == "files"
    report = workspace.ingest([notes], source="whatsapp")
    assert "no WhatsApp messages" in report.failed[0].reason


# -- Messenger ------------------------------------------------------------------------------


def test_messenger_mojibake_and_parts(workspace, tmp_path: Path) -> None:
    export = make_messenger_export(tmp_path)
    assert detect_source(str(export)) == "messenger"
    inbox = export / "your_activity_across_facebook" / "messages" / "inbox"
    assert detect_source(str(inbox / "randonnee_2000" / "message_1.json")) == "messenger"
    assert detect_source(str(inbox / "randonnee_2000" / "message_2.json")) == "files"
    raw = (inbox / "zoedupont_10158" / "message_1.json").read_text("ascii")
    assert "\\u00c3\\u00a9" in raw  # é as Facebook writes it
    report = workspace.ingest([export])
    assert report.failed == [] and report.added == 3
    hit = workspace.search("café next to the gare opens on Sundays", k=1)[0]
    assert hit.source == "messenger://inbox/zoedupont_10158/1767607320000"
    assert "Zoé Dupont (10:02): The café next to the gare opens at 6:30 on Sundays" in hit.text
    assert "Zoé Dupont (10:04): [photo]" in hit.text and "called" not in hit.text
    assert hit.location.startswith("DM Zoé Dupont > conversation 2026-01-05 10:02 by Zoé Dupont")
    assert hit.metadata["created_at"] == "2026-01-05T10:02:00+00:00"
    # message_2.json holds the older part of the group: read with message_1.json.
    refuge = workspace.search("Goûter refuge is full", k=1)[0]
    assert refuge.heading_path[0] == "Randonnée 🏔"
    assert "Marc Lefèvre (10:02): The Goûter refuge is full on 12 July. (https://" in refuge.text
    assert refuge.metadata["principals"] == [
        "Zoé Dupont",
        "Alice Chen",
        "Marc Lefèvre",
        "Inès Moreau",
    ]
    # A conversation's first part brings the others, and only them.
    again = workspace.ingest([inbox / "randonnee_2000" / "message_1.json"])
    assert counts(again) == (0, 0, 2, 0) and again.failed == []


def test_messenger_sync_and_a_broken_part(workspace, tmp_path: Path) -> None:
    assert workspace.ingest([make_messenger_export(tmp_path, "v1")]).added == 3
    second = workspace.ingest([make_messenger_export(tmp_path, "v2")])
    assert counts(second) == (1, 1, 1, 1)
    assert "cost 52 €" in text_of(workspace, "messenger://inbox/randonnee_2000/1767614520000")
    workspace.ingest([make_messenger_export(tmp_path / "a", "v1")])
    report = workspace.ingest([make_messenger_export(tmp_path / "b", "v2", broken=True)])
    [failure] = report.failed
    assert failure.source.endswith("randonnee_2000/message_2.json")
    assert "malformed Messenger export" in failure.reason
    assert report.deleted == 0  # the group was not read whole: Marc's old window stays


def test_unmojibake_leaves_real_text_alone() -> None:
    assert unmojibake("ZoÃ© â\x82¬") == "Zoé €"
    assert unmojibake(["Zoé", {"a": mojibake("Randonnée 🏔")}]) == ["Zoé", {"a": "Randonnée 🏔"}]
    assert unmojibake("Łódź") == "Łódź"  # no Latin-1 form: written as it is


# -- all of them ----------------------------------------------------------------------------


def test_private_chats_are_read_only_by_their_participants(workspace, tmp_path: Path) -> None:
    workspace.ingest(
        [
            make_discord_export(tmp_path / "d"),
            make_telegram_export(tmp_path / "t"),
            *make_whatsapp_exports(tmp_path / "w").values(),
            make_messenger_export(tmp_path / "m"),
        ]
    )
    bob = reader(
        workspace,
        "bob@example.com",
        f"discord:{DISCORD_USERS['bob']['id']}",
        f"telegram:user{TG_BOB}",
        "whatsapp:Bob_Martin",
    )
    zoe = reader(
        workspace,
        "zoe@example.com",
        "messenger:Zoé_Dupont",
        f"discord:{DISCORD_USERS['zoe']['id']}",
    )
    alice = reader(workspace, "alice@example.com", f"telegram:user{OWNER_ID}")
    private = {
        "badge number for the datacenter": f"discord://0/{DM_CHANNEL}/",
        "wifi password for the cabin": f"telegram://{TG_BOB}/",
        "chalet door code": "whatsapp://Bob Martin/",
        "café next to the gare opens on Sundays": "messenger://inbox/zoedupont_10158/",
    }
    for query, prefix in private.items():
        everyone = [h.source for h in workspace.search(query, k=20)]
        assert any(s.startswith(prefix) for s in everyone), query  # the operator reads it
        participant = zoe if prefix.startswith("messenger") else bob
        stranger = bob if prefix.startswith("messenger") else zoe
        assert any(
            h.source.startswith(prefix) for h in workspace.search(query, k=20, caller=participant)
        )
        assert not any(
            h.source.startswith(prefix) for h in workspace.search(query, k=20, caller=stranger)
        )
    # The account that exported Telegram reads its own chats; a server channel is open.
    assert workspace.search("wifi password for the cabin", k=1, caller=alice)[0].source.startswith(
        f"telegram://{TG_BOB}/"
    )
    assert workspace.search("staging gateway port", k=1, caller=zoe)[0].source.startswith(CHANNEL)
    assert workspace.search("offline transcription of voice notes", k=1, caller=zoe)
    dm = stored_documents(workspace)[f"discord://0/{DM_CHANNEL}/1310000000000000001"]
    assert workspace.store.document_access(dm.id).principals == (
        f"discord:{DISCORD_USERS['alice']['id']}",
        f"discord:{DISCORD_USERS['bob']['id']}",
    )


def test_grouping_windows_and_late_replies() -> None:
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 5, 10, 0)

    def at(minutes: int, mid: str, reply_to: str | None = None) -> ChatMessage:
        return ChatMessage(mid, "A", t0 + timedelta(minutes=minutes), mid, reply_to)

    groups = group_messages(
        [at(0, "a"), at(5, "b"), at(60, "c"), at(62, "d", reply_to="a"), at(63, "e"), at(5, "b")]
    )
    assert [[m.id for m in g] for g in groups] == [["a", "b", "d"], ["c", "e"]]
    assert name_alias("whatsapp", "\u200eAlice  Chen ") == "whatsapp:Alice_Chen"
    assert name_alias("whatsapp", "+49 170 1234567") == "whatsapp:+491701234567"


def test_telegram_text_flattening() -> None:
    assert flatten("plain") == "plain"
    assert (
        flatten(
            [
                "a ",
                {"type": "bold", "text": "b"},
                {"type": "text_link", "text": "c", "href": "https://x"},
            ]
        )
        == "a bc (https://x)"
    )
    assert flatten(None) == ""


def test_zipped_exports(workspace, tmp_path: Path) -> None:
    telegram = make_telegram_export(tmp_path / "t")
    archive = tmp_path / "telegram.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(telegram / "result.json", f"{telegram.name}/result.json")
    assert detect_source(str(archive)) == "telegram"
    assert workspace.ingest([archive]).added == 4
    messenger = make_messenger_export(tmp_path / "m")
    fb = tmp_path / "facebook-alicechen.zip"
    with zipfile.ZipFile(fb, "w") as out:
        for path in messenger.rglob("*.json"):
            out.write(path, path.relative_to(messenger).as_posix())
    assert detect_source(str(fb)) == "messenger"
    report = workspace.ingest([fb])
    assert (report.added, report.failed) == (3, [])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"name": "x", "messages": []}))
    assert detect_source(str(other)) == "files"


@pytest.mark.slow
def test_answers_cite_the_chat_message(workspace, tmp_path: Path) -> None:
    workspace.ingest(
        [
            make_discord_export(tmp_path / "d"),
            make_telegram_export(tmp_path / "t"),
            *make_whatsapp_exports(tmp_path / "w").values(),
            make_messenger_export(tmp_path / "m"),
        ]
    )
    questions = {
        "Which port does the staging gateway listen on?": QUESTION,
        "What is the wifi password for the cabin?": f"telegram://{TG_BOB}/10",
        "What is the chalet door code?": "whatsapp://Bob Martin/2025-12-31T21:15",
        "When does the café next to the gare open on Sundays?": (
            "messenger://inbox/zoedupont_10158/1767607320000"
        ),
    }
    for question, source in questions.items():
        answer = workspace.ask(question)
        assert answer.citations, (question, answer.text)
        assert answer.citations[0].hit.source == source, question


def test_discord_partitions_are_one_channel(workspace, tmp_path: Path) -> None:
    whole = next(make_discord_export(tmp_path / "d").glob("*engineering*.json"))
    export = json.loads(whole.read_text("utf-8"))
    folder = tmp_path / "parts"
    folder.mkdir()
    stem = whole.stem
    for n, messages in enumerate((export["messages"][:3], export["messages"][3:]), start=1):
        part = {**export, "messages": messages, "messageCount": len(messages)}
        (folder / f"{stem} [part {n}].json").write_text(json.dumps(part), "utf-8")
    first, second = sorted(folder.iterdir())
    assert detect_source(str(first)) == "discord" and detect_source(str(second)) == "files"
    report = workspace.ingest([first])
    assert (report.added, report.failed) == (2, [])
    # The reply in part 2 joined the question in part 1.
    assert "Carol (2026-01-06 09:00, replying to Alice Chen 10:02)" in text_of(workspace, QUESTION)


def test_whatsapp_year_first_dates(workspace, tmp_path: Path) -> None:
    chat = tmp_path / "WhatsApp Chat with Kenji.txt"
    chat.write_text(
        "2025-12-31 21:15 - Kenji: The shrine opens at 6:00 on New Year's Day.\n", "utf-8"
    )
    assert detect_source(str(chat)) == "whatsapp"
    assert workspace.ingest([chat]).added == 1
    assert "whatsapp://Kenji/2025-12-31T21:15" in stored_documents(workspace)


def test_whatsapp_unknown_date_format_is_named_not_glued(workspace, tmp_path: Path) -> None:
    chat = tmp_path / "WhatsApp Chat with Kenji.txt"
    chat.write_text(
        "31/12/2025, 21:15 - Kenji: The shrine opens at 6:00.\n"
        "10:30 - 11:00 is the quiet hour, a line of the same message.\n"
        "2026年1月1日 9:00 - Kenji: あけましておめでとう\n",
        "utf-8",
    )
    report = workspace.ingest([chat])
    [failure] = report.failed
    assert failure.source == f"{chat}:3" and "a date or time format not known" in failure.reason
    text = text_of(workspace, "whatsapp://Kenji/2025-12-31T21:15")
    assert "The shrine opens at 6:00. 10:30 - 11:00 is the quiet hour" in text
    assert "あけまして" not in text
