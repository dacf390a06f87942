"""Connectors bring documents from where knowledge lives: folders, Notion, Slack, Gmail,
Google Drive, the web and chat archives (Discord, Telegram, WhatsApp, Messenger).
Transcripts are files (see ``parsers/transcript.py``).

``citewise ingest`` picks a connector from the location (``detect``) unless told with
``--source``. Built-ins are listed in ``BUILTIN_CONNECTORS``; third parties register
under the ``citewise.connectors`` entry-point group.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..plugins import PluginGroup, load_plugin
from .base import BaseConnector, Connector, ConnectorFactory

BUILTIN_CONNECTORS = {
    "web": "citewise.connectors.web:WebConnector",
    "slack": "citewise.connectors.slack:SlackExport",
    "notion": "citewise.connectors.notion:NotionExport",
    "gmail": "citewise.connectors.gmail:GmailMbox",
    "drive": "citewise.connectors.drive:DriveTakeout",
    "discord": "citewise.connectors.discord:DiscordExport",
    "telegram": "citewise.connectors.telegram:TelegramExport",
    "whatsapp": "citewise.connectors.whatsapp:WhatsAppExport",
    "messenger": "citewise.connectors.messenger:MessengerExport",
    "files": "citewise.connectors.files:Files",
}
GROUP = "citewise.connectors"
CONNECTORS = PluginGroup[ConnectorFactory](GROUP, BUILTIN_CONNECTORS, "source")
if TYPE_CHECKING:  # mypy holds every built-in to the contract
    from .discord import DiscordExport
    from .drive import DriveTakeout
    from .files import Files
    from .gmail import GmailMbox
    from .messenger import MessengerExport
    from .notion import NotionExport
    from .slack import SlackExport
    from .telegram import TelegramExport
    from .web import WebConnector
    from .whatsapp import WhatsAppExport

    _BUILTINS: tuple[ConnectorFactory, ...] = (
        WebConnector,
        SlackExport,
        NotionExport,
        GmailMbox,
        DriveTakeout,
        DiscordExport,
        TelegramExport,
        WhatsAppExport,
        MessengerExport,
        Files,
    )

__all__ = [
    "BUILTIN_CONNECTORS",
    "BaseConnector",
    "Connector",
    "ConnectorFactory",
    "connector_for",
    "detect_source",
]


def connector_class(name: str) -> ConnectorFactory:
    return load_plugin(CONNECTORS, name)


def detect_source(location: str) -> str:
    """The connector name for a location: the first built-in (in the order above, files last)
    or plug-in whose ``detect`` accepts it."""
    names = [n for n in BUILTIN_CONNECTORS if n != "files"]
    names += sorted(
        ep.name for ep in entry_points(group=GROUP) if ep.name not in BUILTIN_CONNECTORS
    )
    for name in names:
        if connector_class(name).detect(location):
            return name
    return "files"


def connector_for(location: str, source: str | None = None, **options: Any) -> Connector:
    return connector_class(source or detect_source(location))(location, **options)
