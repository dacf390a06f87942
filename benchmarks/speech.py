"""Speech to text on recordings made here: word error rate, real-time factor, peak memory.

    python benchmarks/speech.py [--json FILE]

The recordings are synthesised with espeak-ng (American voice, 140 words a minute) from
known texts — so the reference transcript is exact — and put together with silences
between paragraphs, as a meeting has, then encoded as MP3 by ffmpeg. Each is transcribed
by citewise's recording parser (faster-whisper, int8, VAD) in a fresh process, so peak
memory (VmHWM) is that transcription's own, with greedy decoding and with 5 beams (the
default). WER is computed with jiwer on lower-cased words without punctuation; numbers the
speech spells out ("twelve") are compared as the model writes them, so digits count as
errors where it writes "12" — the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

SCRIPTS = {
    "standup": [
        "Good morning everyone. Yesterday I finished the migration of the billing service.",
        "Today I will review the pull requests for the search team and fix the flaky test.",
        "The deployment to the staging cluster is blocked until the database upgrade is done.",
        "Please send me your availability for the planning meeting on Thursday afternoon.",
    ],
    "product review": [
        "Welcome to the product review. We will look at the results of the last quarter.",
        "Customers asked for faster search, better exports and a simpler way to share reports.",
        "The new onboarding flow reduced the time to the first report from ten minutes to four.",
        "Support tickets about passwords dropped after we added single sign on for companies.",
        "The mobile application still crashes on older phones when it opens large documents.",
        "Our next priority is reliability: every release must pass the full regression suite.",
        "Marketing will publish the case study with the logistics customer next month.",
        "The pricing change for small teams starts in January and existing customers keep theirs.",
        "We will hire two engineers for the data platform and one designer for the mobile team.",
        "Questions about the roadmap can go to the product channel, and we answer every week.",
    ],
}
SILENCE_SECONDS = 4.0
BEAMS = (1, 5)  # greedy, and the parser's default (CITEWISE_WHISPER_BEAM)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        transcribe_one(args.one)
        return
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, paragraphs in SCRIPTS.items():
            recording, seconds = synthesise(paragraphs, Path(tmp), name)
            for beam in BEAMS:  # the default beside greedy decoding, on the same recording
                measured = measure(recording, beam)
                wer = word_error_rate(" ".join(paragraphs), measured.pop("text"))
                row = {
                    "audio_seconds": round(seconds, 1),
                    "wer": round(wer, 3),
                    **measured,
                    "rtf": round(measured["seconds"] / seconds, 3),
                }
                results[f"{name}, beam {beam}"] = row
                print(
                    f"{name:16s} beam {beam}  WER {wer:.3f}  real-time factor "
                    f"{row['rtf']:.3f}  peak {row['peak_mb']} MB",
                    flush=True,
                )
    results["machine"] = {"cpus": os.cpu_count(), "model": "faster-whisper tiny.en int8 (packaged)"}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def synthesise(paragraphs: list[str], folder: Path, name: str) -> tuple[Path, float]:
    slug = re.sub(r"\W+", "-", name).strip("-")
    parts = []
    for number, paragraph in enumerate(paragraphs):
        wav = folder / f"{slug}-{number}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), paragraph],
            check=True,
            capture_output=True,
        )
        parts.append(wav)
    silence = folder / "silence.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=22050:cl=mono",
            "-t",
            str(SILENCE_SECONDS),
            str(silence),
        ],
        check=True,
        capture_output=True,
    )
    inputs = [p for part in parts for p in (part, silence)][:-1]
    listing = folder / f"{slug}.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in inputs))
    recording = folder / f"{slug}.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-b:a",
            "64k",
            str(recording),
        ],
        check=True,
        capture_output=True,
    )
    seconds = sum(_wav_seconds(p) for p in inputs)
    return recording, seconds


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


def measure(recording: Path, beam: int) -> dict:
    """Transcribe in a fresh process: its time (model load excluded) and peak memory."""
    environment = os.environ | {"CITEWISE_WHISPER_BEAM": str(beam)}
    done = subprocess.run(
        [sys.executable, __file__, "--one", str(recording)],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def transcribe_one(recording: Path) -> None:
    """What parse()'s child process does, timed after the model has loaded."""
    from citewise.parsers.audio import transcribe, whisper_model

    whisper_model()  # loaded before the clock starts: the model loads once per process
    started = time.perf_counter()
    result = transcribe(recording)
    seconds = time.perf_counter() - started
    text = " ".join(text for _, _, text in result["cues"])
    peak_kb = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    print(json.dumps({"seconds": round(seconds, 2), "peak_mb": peak_kb // 1024, "text": text}))


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    def words(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9']+", text.lower()))

    return jiwer.wer(words(reference), words(hypothesis))


if __name__ == "__main__":
    main()
