"""A model in a folder of the user's: ``local:/path/to/folder``.

The folder holds a float ONNX export of a BERT-style sentence encoder (``model.onnx``),
its ``tokenizer.json`` and ``citewise-model.json`` (``{"dim", "max_tokens", "heads"}``) —
what ``citewise tune --finetune-embedder`` writes. It runs exactly like the built-in
model: the same int8 recipe (``int8.py``), mean pooling, unit vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError
from .catalogue import ModelDescription, PackagedFile
from .onnx import OnnxEmbedder

DESCRIPTION_FILE = "citewise-model.json"
_NOT_PACKAGED = PackagedFile("", "", "")  # a local model comes from no package


class LocalOnnxEmbedder(OnnxEmbedder):
    def __init__(self, model: str, threads: int | None = None) -> None:
        folder = Path(model).expanduser().resolve()
        files = (folder / "model.onnx", folder / "tokenizer.json")
        try:
            described = json.loads((folder / DESCRIPTION_FILE).read_text(encoding="utf-8"))
            dim, max_tokens = int(described["dim"]), int(described["max_tokens"])
            heads = int(described.get("heads", 0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"{folder / DESCRIPTION_FILE}: cannot read the model's description "
                f"({type(exc).__name__}: {exc}); a local model folder needs model.onnx, "
                f"tokenizer.json and {DESCRIPTION_FILE}"
            ) from exc
        for path in files:
            if not path.is_file():
                raise ModelError(f"{path}: missing from the local model folder")
        name = f"local:{folder}"
        description = ModelDescription(
            name,
            dim,
            max_tokens,
            "",
            "",
            "",
            _NOT_PACKAGED,
            _NOT_PACKAGED,
            license=str(described.get("license", "")),
            size_mb=0.0,
            heads=heads,
        )
        super().__init__(name, threads, description=description, files=files)
