"""Embedders turn text into unit vectors.

An embedder spec names a backend and a model: ``all-MiniLM-L6-v2`` (a catalogue
name, run by the built-in ONNX backend), ``sentence-transformers:BAAI/bge-small-en-v1.5``
or ``openai:text-embedding-3-small``, or ``local:/path/to/folder`` (an ONNX export
of the user's own, e.g. one ``citewise tune --finetune-embedder`` made). Backends register in ``BUILTIN_BACKENDS`` or,
for third parties, under the ``citewise.embedders`` entry-point group.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..plugins import load_plugin
from .base import BaseEmbedder, Embedder
from .catalogue import CATALOGUE, ModelDescription

BUILTIN_BACKENDS = {
    "onnx": "citewise.embedders.onnx:OnnxEmbedder",
    "local": "citewise.embedders.local:LocalOnnxEmbedder",
    "sentence-transformers": "citewise.embedders.sentence_transformers:SentenceTransformerEmbedder",
    "openai": "citewise.embedders.openai:OpenAIEmbedder",
}

__all__ = ["CATALOGUE", "BaseEmbedder", "Embedder", "ModelDescription", "load_embedder"]


def load_embedder(spec: str) -> Embedder:
    backend, _, model = spec.partition(":") if ":" in spec else ("onnx", "", spec)
    if backend == "onnx" and model not in CATALOGUE:
        names = ", ".join(sorted(CATALOGUE))
        raise ConfigError(f"unknown embedding model {model!r}; built-in models: {names}")
    return _backend_class(backend)(model)


def _backend_class(backend: str) -> type:
    return load_plugin("citewise.embedders", BUILTIN_BACKENDS, backend, "embedder backend")
