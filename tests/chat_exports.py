"""Chat archives built the way each exporter lays them out: DiscordChatExporter JSON,
Telegram Desktop's result.json, WhatsApp's .txt/.zip (Android and iOS, US and German
locales) and Facebook Messenger's message_N.json (with Facebook's mojibake). The people,
servers and messages are made up here."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

# -- Discord (DiscordChatExporter --format Json) ----------------------------------------------

GUILD = "900000000000000001"
ENGINEERING = "910000000000000001"
DM_CHANNEL = "920000000000000001"
DISCORD_USERS = {
    "alice": {"id": "100000000000000001", "name": "alice.chen", "nickname": "Alice Chen"},
    "bob": {"id": "100000000000000002", "name": "bobm", "nickname": None},
    "zoe": {"id": "100000000000000003", "name": "zoe", "nickname": "Zoé"},
    "carol": {"id": "100000000000000004", "name": "carol", "nickname": "Carol"},
    "ci": {"id": "100000000000000099", "name": "CI Bot", "nickname": None, "isBot": True},
}


def _discord_author(who: str) -> dict[str, Any]:
    user = DISCORD_USERS[who]
    return {
        "id": user["id"],
        "name": user["name"],
        "discriminator": "0000",
        "nickname": user["nickname"] or user["name"],
        "color": None,
        "isBot": bool(user.get("isBot")),
        "roles": [],
        "avatarUrl": "https://cdn.discordapp.com/embed/avatars/0.png",
    }


def _discord_message(
    mid: str,
    who: str,
    when: str,
    content: str,
    kind: str = "Default",
    reply_to: str | None = None,
    edited: str | None = None,
    channel: str = ENGINEERING,
    guild: str = GUILD,
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": mid,
        "type": "Reply" if reply_to else kind,
        "timestamp": when,
        "timestampEdited": edited,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": _discord_author(who),
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
        "inlineEmojis": [],
    }
    if reply_to:
        message["reference"] = {"messageId": reply_to, "channelId": channel, "guildId": guild}
    message.update(extra)
    return message


def discord_channel_messages(variant: str = "v1") -> list[dict[str, Any]]:
    port = (
        "The staging gateway listens on port 9443 since the December migration."
        if variant == "v2"
        else "The staging gateway listens on port 8443 since the December migration."
    )
    messages = [
        _discord_message(
            "1300000000000000001",
            "zoe",
            "2026-01-05T09:55:00+01:00",
            "Joined the server.",
            kind="GuildMemberJoin",
        ),
        _discord_message(
            "1300000000000000010",
            "alice",
            "2026-01-05T10:02:00.123+01:00",
            "Which port does the staging gateway listen on? @bobm you set it up",
            mentions=[_discord_author("bob")],
        ),
        _discord_message(
            "1300000000000000011",
            "bob",
            "2026-01-05T10:04:30.5+01:00",
            port,
            reply_to="1300000000000000010",
            edited="2026-01-08T08:00:00+01:00" if variant == "v2" else None,
        ),
        _discord_message(
            "1300000000000000012", "ci", "2026-01-05T10:05:00+01:00", "Build #88 passed"
        ),
        _discord_message(
            "1300000000000000020",
            "zoe",
            "2026-01-05T14:30:00+01:00",
            "The lunch order closes at noon tomorrow 🍕",
            attachments=[
                {
                    "id": "1",
                    "url": "https://cdn.discordapp.com/attachments/menu.pdf",
                    "fileName": "menu.pdf",
                    "fileSizeBytes": 20480,
                }
            ],
        ),
        # A day later, a reply to yesterday's question: it joins that conversation.
        _discord_message(
            "1300000000000000030",
            "carol",
            "2026-01-06T09:00:00+01:00",
            "Correction: that port is only for the admin API, the public one is 443.",
            reply_to="1300000000000000010",
        ),
    ]
    if variant == "v2":
        del messages[4]  # the lunch message was deleted
        messages.append(
            _discord_message(
                "1300000000000000040",
                "alice",
                "2026-01-07T16:00:00+01:00",
                "The sprint retro moves to Thursday at 15:00.",
            )
        )
    return messages


def _dce_file(
    guild: dict[str, Any], channel: dict[str, Any], messages: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "guild": {**guild, "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png"},
        "channel": channel,
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2026-01-09T12:00:00+01:00",
        "messages": messages,
        "messageCount": len(messages),
    }


def make_discord_export(root: Path, variant: str = "v1", broken: bool = False) -> Path:
    """A folder as DiscordChatExporter writes a server and a DM to it: one JSON per channel."""
    folder = root / f"discord-{variant}"
    folder.mkdir(parents=True, exist_ok=True)
    guild = {"id": GUILD, "name": "Citewise Lab"}
    channel = {
        "id": ENGINEERING,
        "type": "GuildTextChat",
        "categoryId": "905000000000000001",
        "category": "Text Channels",
        "name": "engineering",
        "topic": "Build and deploy",
    }
    messages = discord_channel_messages(variant)
    if broken:
        messages.insert(2, {**messages[2], "id": "1300000000000000013", "timestamp": "yesterday"})
    files = {
        f"Citewise Lab - Text Channels - engineering [{ENGINEERING}].json": _dce_file(
            guild, channel, messages
        ),
        f"Direct Messages - Private - bobm [{DM_CHANNEL}].json": _dce_file(
            {"id": "0", "name": "Direct Messages"},
            {
                "id": DM_CHANNEL,
                "type": "DirectTextChat",
                "categoryId": None,
                "category": "Private",
                "name": "bobm",
                "topic": None,
            },
            [
                _discord_message(
                    "1310000000000000001",
                    "alice",
                    "2026-01-05T18:00:00+01:00",
                    "My badge number for the datacenter is 4471, please add it to the list.",
                    channel=DM_CHANNEL,
                    guild="0",
                ),
                _discord_message(
                    "1310000000000000002",
                    "bob",
                    "2026-01-05T18:03:00+01:00",
                    "Added, you can badge in from Monday.",
                    channel=DM_CHANNEL,
                    guild="0",
                ),
            ],
        ),
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, ensure_ascii=False, indent=2), "utf-8")
    return folder


# -- Telegram Desktop (result.json) ----------------------------------------------------------

OWNER_ID = 5001  # Alice, who exported her account
TG_BOB, TG_CAROL, TG_DAVE = 5002, 5003, 5004
HIKING = 1700000001
NEWS = 1700000002


def _tg(
    mid: int, who: str, uid: int | str, local: str, unix: int, text: Any, **extra: Any
) -> dict[str, Any]:
    sender = uid if isinstance(uid, str) else f"user{uid}"
    message: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "date": local,
        "date_unixtime": str(unix),
        "from": who,
        "from_id": sender,
        "text": text,
        "text_entities": [],
    }
    message.update(extra)
    return message


# 2026-01-05 10:02:00 UTC; the exporting machine is on UTC+1.
TG0 = 1767607320


def telegram_chats(variant: str = "v1") -> list[dict[str, Any]]:
    personal = {
        "name": "Bob Martin",
        "type": "personal_chat",
        "id": TG_BOB,
        "messages": [
            _tg(
                10,
                "Bob Martin",
                TG_BOB,
                "2026-01-05T11:02:00",
                TG0,
                [
                    "The wifi password for the cabin is ",
                    {"type": "bold", "text": "pine-cone-42"},
                    ".",
                ],
            ),
            _tg(
                11,
                "Alice Chen",
                OWNER_ID,
                "2026-01-05T11:03:00",
                TG0 + 60,
                "Thanks!",
                reply_to_message_id=10,
            ),
        ],
    }
    hike = (
        "The hike to Lac Blanc starts at the Flégère cable car at 8:00 sharp."
        if variant == "v1"
        else "The hike to Lac Blanc starts at the Flégère cable car at 7:30 sharp."
    )
    hiking_messages = [
        {
            "id": 1,
            "type": "service",
            "date": "2026-01-05T10:00:00",
            "date_unixtime": str(TG0 - 3720),
            "actor": "Dave",
            "actor_id": f"user{TG_DAVE}",
            "action": "join_group_by_link",
            "inviter": "Carol",
        },
        _tg(
            2,
            "Carol",
            TG_CAROL,
            "2026-01-05T12:00:00",
            TG0 + 3480,
            [
                hike,
                " Route: ",
                {
                    "type": "text_link",
                    "text": "the map",
                    "href": "https://maps.example.com/lac-blanc",
                },
            ],
            **(
                {"edited": "2026-01-06T09:00:00", "edited_unixtime": str(TG0 + 79080)}
                if variant == "v2"
                else {}
            ),
        ),
        _tg(
            3,
            "Alice Chen",
            OWNER_ID,
            "2026-01-05T12:05:00",
            TG0 + 3780,
            "",
            photo="photos/photo_1@05-01-2026_12-05-00.jpg",
        ),
        _tg(
            4,
            "Dave",
            TG_DAVE,
            "2026-01-05T19:00:00",
            TG0 + 28680,
            "Bring crampons, the upper trail is icy.",
        ),
    ]
    if variant == "v2":
        del hiking_messages[3]  # Dave's message was deleted
        hiking_messages.append(
            _tg(
                5,
                "Dave",
                TG_DAVE,
                "2026-01-07T20:00:00",
                TG0 + 208680,
                "Dinner after the hike is at Chalet Refuge.",
            )
        )
    return [
        personal,
        {
            "name": "Hiking club",
            "type": "private_supergroup",
            "id": HIKING,
            "messages": hiking_messages,
        },
        {
            "name": "Citewise News",
            "type": "public_channel",
            "id": NEWS,
            "messages": [
                _tg(
                    7,
                    "Citewise News",
                    f"channel{NEWS}",
                    "2026-01-05T09:00:00",
                    TG0 - 7320,
                    "Release 2.4 adds offline transcription of voice notes.",
                )
            ],
        },
    ]


def make_telegram_export(
    root: Path, variant: str = "v1", single_chat: bool = False, broken: bool = False
) -> Path:
    """``DataExport_…/result.json`` (the account), or ``ChatExport_…/result.json`` (one chat)."""
    chats = telegram_chats(variant)
    if broken:
        chats[1]["messages"].insert(
            2, {"id": 99, "type": "message", "date": "not a date", "text": "x"}
        )
    if single_chat:
        folder = root / f"ChatExport_2026-01-09-{variant}"
        content: dict[str, Any] = chats[1]
    else:
        folder = root / f"DataExport_2026-01-09-{variant}"
        content = {
            "about": "Here is the data you requested. Remember: Telegram is ad free.",
            "personal_information": {
                "user_id": OWNER_ID,
                "first_name": "Alice",
                "last_name": "Chen",
                "phone_number": "+33 6 00 00 00 01",
                "bio": "",
            },
            "contacts": {"about": "Contacts", "list": []},
            "chats": {"about": "This page lists all chats from this export.", "list": chats},
            "left_chats": {"about": "Chats you left.", "list": []},
        }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(content, ensure_ascii=False, indent=1), "utf-8")
    return folder


# -- WhatsApp (.txt / .zip) --------------------------------------------------------------------

NNBSP = "\u202f"  # the narrow no-break space WhatsApp puts before AM/PM
LRM = "\u200e"  # the left-to-right mark iOS puts before attachments and system lines


def whatsapp_us_android(variant: str = "v1") -> str:
    """Android, English (US): 12-hour clock, month first, two-digit years."""
    lines = [
        f"12/31/25, 9:00{NNBSP}PM - Messages and calls are end-to-end encrypted. No one outside "
        "of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.",
        f"12/31/25, 9:15{NNBSP}PM - Bob Martin: Happy new year! Are we still on for the ski trip?",
        f"12/31/25, 9:16{NNBSP}PM - Alice Chen: Yes! The chalet door code is 5-1-9-7.",
        "Parking is behind the bakery,",
        "not in front of the church.",
        f"12/31/25, 9:17{NNBSP}PM - Bob Martin: <Media omitted>",
        f"1/2/26, 8:05{NNBSP}AM - Bob Martin: I booked the 7:40 train to Annecy.",
        f"1/2/26, 7:00{NNBSP}PM - Alice Chen: I will bring the raclette cheese.",
    ]
    if variant == "v2":
        lines[6] = (
            f"1/2/26, 8:05{NNBSP}AM - Bob Martin: I booked the 9:10 train to Annecy. "
            "<This message was edited>"
        )
        lines[7] = f"1/3/26, 6:30{NNBSP}PM - Alice Chen: Bring the avalanche beacons."
    return "\n".join(lines) + "\n"


def whatsapp_de_ios() -> str:
    """iOS, German: 24-hour clock with seconds, day first, dots."""
    return (
        "\n".join(
            [
                f"[31.12.25, 21:15:42] Familie: {LRM}Nachrichten und Anrufe sind Ende-zu-Ende-"
                "verschlüsselt. Niemand außerhalb dieses Chats kann sie lesen oder anhören.",
                f"{LRM}[31.12.25, 21:16:03] Oma Gisela: {LRM}<attached: 00000012-PHOTO-2025-12-31.jpg>",
                "[31.12.25, 21:16:30] Oma Gisela: Der Apfelstrudel braucht 45 Minuten bei 180 Grad.",
                "[31.12.25, 21:18:05] Jonas: Danke Oma! Und wie viel Zimt?",
                "[31.12.25, 21:19:11] Oma Gisela: Zwei Teelöffel Zimt,",
                "und eine Prise Muskat.",
                f"[01.01.26, 10:02:00] {LRM}Jonas hat die Gruppenbeschreibung geändert.",
                "[13.01.26, 18:30:00] Jonas: Familientreffen am 14. Februar bei Tante Ute.",
            ]
        )
        + "\n"
    )


def whatsapp_eu_android(bad_line: bool = False) -> str:
    """Android, English (UK): 24-hour clock, day first, four-digit years."""
    lines = [
        "31/12/2025, 21:15 - Priya: The boiler service is booked for 7 January.",
        "31/12/2025, 21:20 - Tom: Great, the engineer needs the code 2468 for the side gate.",
    ]
    if bad_line:
        lines.insert(1, "45/13/2025, 21:17 - Tom: this line has no real date")
    return "\n".join(lines) + "\n"


def make_whatsapp_exports(
    root: Path, variant: str = "v1", bad_line: bool = False
) -> dict[str, Path]:
    """An Android .txt (US), an iOS .zip around ``_chat.txt`` (German, with a photo) and an
    Android .txt (UK)."""
    root.mkdir(parents=True, exist_ok=True)
    us = root / "WhatsApp Chat with Bob Martin.txt"
    us.write_text(whatsapp_us_android(variant), encoding="utf-8")
    de = root / "WhatsApp Chat - Familie.zip"
    with zipfile.ZipFile(de, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("_chat.txt", whatsapp_de_ios())
        out.writestr("00000012-PHOTO-2025-12-31.jpg", b"\xff\xd8\xff\xe0 jpeg")
    uk = root / "WhatsApp Chat with Priya.txt"
    uk.write_text(whatsapp_eu_android(bad_line), encoding="utf-8")
    return {"us": us, "de": de, "uk": uk}


# -- Facebook Messenger (message_N.json) -------------------------------------------------------


def mojibake(value: Any) -> Any:
    """What Facebook's exporter does to text: each UTF-8 byte becomes a code point."""
    if isinstance(value, str):
        return value.encode("utf-8").decode("latin-1")
    if isinstance(value, list):
        return [mojibake(v) for v in value]
    if isinstance(value, dict):
        return {k: mojibake(v) for k, v in value.items()}
    return value


MS0 = 1767607320000  # 2026-01-05 10:02:00 UTC


def messenger_threads(variant: str = "v1") -> dict[str, list[dict[str, Any]]]:
    """Conversation folder → its message_N.json files (newest messages first, as Facebook
    writes them)."""
    dm_messages: list[dict[str, Any]] = [
        {
            "sender_name": "Zoé Dupont",
            "timestamp_ms": MS0,
            "content": "The café next to the gare opens at 6:30 on Sundays, my treat.",
            "is_geoblocked_for_viewer": False,
        },
        {
            "sender_name": "Alice Chen",
            "timestamp_ms": MS0 + 60_000,
            "content": "Perfect, see you there at 7 ☕",
            "reactions": [{"reaction": "👍", "actor": "Zoé Dupont"}],
        },
        {
            "sender_name": "Zoé Dupont",
            "timestamp_ms": MS0 + 120_000,
            "photos": [
                {
                    "uri": "your_activity_across_facebook/messages/inbox/zoedupont_10158/photos/1.jpg",
                    "creation_timestamp": MS0 // 1000,
                }
            ],
        },
        {
            "sender_name": "Alice Chen",
            "timestamp_ms": MS0 + 180_000,
            "content": "Alice called Zoé.",
            "type": "Call",
            "call_duration": 0,
        },
    ]
    group_old: list[dict[str, Any]] = [
        {
            "sender_name": "Marc Lefèvre",
            "timestamp_ms": MS0 - 86_400_000,
            "content": "The Goûter refuge is full on 12 July.",
            "share": {"link": "https://refuges.example.com/gouter"},
        },
    ]
    group_new: list[dict[str, Any]] = [
        {
            "sender_name": "Zoé Dupont",
            "timestamp_ms": MS0 + 7_200_000,
            "content": "Shall we book the Tête Rousse hut instead? 🏔",
        },
        {
            "sender_name": "Inès Moreau",
            "timestamp_ms": MS0 + 7_260_000,
            "content": "Yes: two nights at Tête Rousse cost 48 € per person.",
        },
        {"sender_name": "Alice Chen", "timestamp_ms": MS0 + 7_300_000, "is_unsent": True},
    ]
    if variant == "v2":
        group_new[1]["content"] = "Yes: two nights at Tête Rousse cost 52 € per person."
        group_old.clear()  # Marc's message was deleted
        group_new.append(
            {
                "sender_name": "Marc Lefèvre",
                "timestamp_ms": MS0 + 172_800_000,
                "content": "The train leaves Lyon Part-Dieu at 6:04.",
            }
        )
    dm = {
        "participants": [{"name": "Zoé Dupont"}, {"name": "Alice Chen"}],
        "messages": list(reversed(dm_messages)),
        "title": "Zoé Dupont",
        "is_still_participant": True,
        "thread_path": "inbox/zoedupont_10158",
        "magic_words": [],
    }
    group_header = {
        "participants": [
            {"name": "Zoé Dupont"},
            {"name": "Alice Chen"},
            {"name": "Marc Lefèvre"},
            {"name": "Inès Moreau"},
        ],
        "title": "Randonnée 🏔",
        "is_still_participant": True,
        "thread_type": "RegularGroup",
        "thread_path": "inbox/randonnee_2000",
        "magic_words": [],
    }
    return {
        "zoedupont_10158": [dm],
        "randonnee_2000": [
            {**group_header, "messages": list(reversed(group_new))},
            {**group_header, "messages": list(reversed(group_old))},
        ],
    }


def make_messenger_export(root: Path, variant: str = "v1", broken: bool = False) -> Path:
    """The folder of Facebook's *Download your information* (JSON), messages only."""
    base = root / f"facebook-alicechen-{variant}"
    inbox = base / "your_activity_across_facebook" / "messages" / "inbox"
    for folder, parts in messenger_threads(variant).items():
        (inbox / folder).mkdir(parents=True, exist_ok=True)
        for n, part in enumerate(parts, start=1):
            # Facebook writes \u00c3\u00a9 escapes: ASCII JSON of the mojibake.
            text = json.dumps(mojibake(part), indent=2)
            (inbox / folder / f"message_{n}.json").write_text(text, encoding="ascii")
    if broken:
        (inbox / "randonnee_2000" / "message_2.json").write_text('{"participants": [', "ascii")
    return base
