"""Embedders turn text into unit vectors.

An embedder spec names a backend and a model: ``all-MiniLM-L6-v2`` (a catalogue
name, run by the built-in ONNX backend), ``sentence-transformers:BAAI/bge-small-en-v1.5``
or ``openai:text-embedding-3-small``, or ``local:/path/to/folder`` (an ONNX export
of the user's own, e.g. one ``citewise tune --finetune-embedder`` made). Backends register in ``BUILTIN_BACKENDS`` or,
for third parties, under the ``citewise.embedders`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ConfigError
from ..plugins import PluginGroup, load_plugin
from .base import (
    BaseEmbedder,
    Embedder,
    EmbedderFactory,
    SettingsEmbedderFactory,
    embed_texts,
)
from .catalogue import CATALOGUE, ModelDescription

BUILTIN_BACKENDS = {
    "onnx": "citewise.embedders.onnx:OnnxEmbedder",
    "local": "citewise.embedders.local:LocalOnnxEmbedder",
    "sentence-transformers": "citewise.embedders.sentence_transformers:SentenceTransformerEmbedder",
    "openai": "citewise.embedders.openai:OpenAIEmbedder",
}
BACKENDS = PluginGroup[EmbedderFactory]("citewise.embedders", BUILTIN_BACKENDS, "embedder backend")
if TYPE_CHECKING:  # mypy holds every built-in to the contract
    from .local import LocalOnnxEmbedder
    from .onnx import OnnxEmbedder
    from .openai import OpenAIEmbedder
    from .sentence_transformers import SentenceTransformerEmbedder

    _BUILTINS: tuple[EmbedderFactory, ...] = (
        OnnxEmbedder,
        LocalOnnxEmbedder,
        SentenceTransformerEmbedder,
        OpenAIEmbedder,
    )
    _CALLING_OUT: tuple[SettingsEmbedderFactory, ...] = (OpenAIEmbedder,)

__all__ = [
    "CATALOGUE",
    "BaseEmbedder",
    "Embedder",
    "EmbedderFactory",
    "ModelDescription",
    "embed_texts",
    "load_embedder",
]


def load_embedder(
    spec: str,
    settings: Settings | None = None,
    workspace: Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> Embedder:
    """The embedder ``spec`` names. A backend that calls out (``openai``) has a
    ``from_settings(model, settings, workspace, config)`` classmethod and gets its
    connection (``base_url``, ``api_key_env``, ``api_key_file``, ``[targets]``) from the
    workspace's settings and ``citewise.toml`` (``config``, as :attr:`Workspace.config`
    parsed it); without ``settings``, from the environment and the defaults."""
    backend, _, model = spec.partition(":") if ":" in spec else ("onnx", "", spec)
    if backend == "onnx" and model not in CATALOGUE:
        names = ", ".join(sorted(CATALOGUE))
        raise ConfigError(f"unknown embedding model {model!r}; built-in models: {names}")
    cls = _backend_class(backend)
    if not isinstance(cls, SettingsEmbedderFactory):
        return cls(model)
    if settings is None and config is None:
        settings = Settings.load(workspace)
    elif settings is None:
        settings = Settings.resolve(config or {}, {})[0]
    return cls.from_settings(model, settings, workspace, config)


def _backend_class(backend: str) -> EmbedderFactory:
    return load_plugin(BACKENDS, backend)
