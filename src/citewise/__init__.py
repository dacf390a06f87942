"""citewise: ask questions of your own documents, with cited answers."""

from .documents import (
    AgentStep,
    Answer,
    Block,
    Budget,
    Chunk,
    Citation,
    Document,
    Hit,
    ParsedDocument,
    Usage,
)
from .errors import (
    CitewiseError,
    ConfigError,
    EmbedderMismatch,
    ExtractionFailed,
    MissingAPIKey,
    ModelError,
    ParseError,
    ProviderError,
    WorkspaceError,
)
from .extraction import Extraction
from .ingest import IngestReport, Progress
from .workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "AgentStep",
    "Answer",
    "Block",
    "Budget",
    "Chunk",
    "Citation",
    "CitewiseError",
    "ConfigError",
    "Document",
    "EmbedderMismatch",
    "Extraction",
    "ExtractionFailed",
    "Hit",
    "IngestReport",
    "MissingAPIKey",
    "ModelError",
    "ParseError",
    "ParsedDocument",
    "Progress",
    "ProviderError",
    "Usage",
    "Workspace",
    "WorkspaceError",
    "__version__",
]
