"""Generate a few tokens with llama.cpp in a child process, so a crash is a report.

llama.cpp is native code compiled for the machine it was built on; on some CPUs a kernel
crashes the process outright (Intel AMX with repacked Q4 weights segfaulted on the first
decode in llama-cpp-python 0.3.36). A crash inside the Python process can't be caught,
so before citewise loads a model in-process it checks once, in a child, that this
llama.cpp, this model and these parameters generate text on this CPU; the verdict is
cached per (llama-cpp-python build, model file, CPU, parameters).

    python -m citewise.providers.llama_probe MODEL.gguf [--extra-bufts 0|1] [--tokens N]

prints one JSON line: tokens generated, tokens/s, prompt tokens/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from ..cpu import cpu_summary, has_amx

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 120.0  # a 135M model loads and writes 16 tokens in about a second
PROBE_PROMPT = (
    "Sources:\n\n[1] Keys (Rotating)\nTo rotate the API keys, run `keyctl rotate --all`.\n\n"
    "Question: How do I rotate the API keys?"
)


def default_extra_bufts() -> bool:
    """Whether llama.cpp may repack weights into its CPU-specific buffer types.

    Off on CPUs with AMX: there llama.cpp repacks Q4 weights into its AMX buffer type and
    the first decode segfaults (llama-cpp-python 0.3.36, reported on a Sapphire Rapids
    Xeon; `use_extra_bufts = False` answers). Elsewhere on: on AVX-512 (AMD EPYC,
    `benchmarks/local_models.py --repack`) the repacked Q4_K weights of Gemma 3 270M
    generate faster, and SmolLM2's Q4_1 weights have no repacked layout, so it makes no
    difference to the default model. The probe below catches any other CPU where it
    crashes and turns repacking off there.
    """
    return not has_amx()


@contextmanager
def llama_model_params(use_extra_bufts: bool) -> Iterator[None]:
    """Every ``llama_cpp.Llama`` created inside gets ``use_extra_bufts``.

    llama-cpp-python exposes no argument for the model parameter, and ``Llama()`` reads
    its defaults from ``llama_model_default_params`` while loading; this swaps that
    function for one that sets the field. Callers hold a lock if threads load models.
    """
    from llama_cpp import llama_cpp as bindings

    original = bindings.llama_model_default_params

    def params() -> bindings.llama_model_params:
        value: bindings.llama_model_params = original()  # a ctypes binding: untyped
        value.use_extra_bufts = use_extra_bufts
        return value

    bindings.llama_model_default_params = params
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    use_extra_bufts: bool
    detail: str  # the generated text, or what went wrong
    tokens_per_s: float = 0.0
    prompt_tokens_per_s: float = 0.0
    returncode: int = 0


def llama_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "not installed"


def probe_command(model_path: Path, use_extra_bufts: bool, tokens: int = 16) -> list[str]:
    return [
        sys.executable,
        "-m",
        "citewise.providers.llama_probe",
        str(model_path),
        "--extra-bufts",
        str(int(use_extra_bufts)),
        "--tokens",
        str(tokens),
    ]


def probe(
    model_path: Path,
    use_extra_bufts: bool,
    timeout: float = PROBE_TIMEOUT_S,
    command: Sequence[str] | None = None,
) -> ProbeResult:
    """Run the probe in a child process; a crash, a hang or an error becomes the result."""
    command = list(command or probe_command(model_path, use_extra_bufts))
    try:
        child = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(
            False, use_extra_bufts, f"did not finish in {timeout:.0f} s", returncode=-9
        )
    last_line = child.stdout.strip().splitlines()[-1:] if child.stdout.strip() else []
    if child.returncode == 0 and last_line:
        report = json.loads(last_line[0])
        return ProbeResult(
            True,
            use_extra_bufts,
            report["text"],
            report["tokens_per_s"],
            report["prompt_tokens_per_s"],
        )
    return ProbeResult(
        False,
        use_extra_bufts,
        _failure(child.returncode, child.stderr),
        returncode=child.returncode,
    )


def _failure(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the process was killed by {name} (signal {-returncode})"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"exit status {returncode}: {lines[-1] if lines else 'no message'}"


def explain(model_path: Path, results: Sequence[ProbeResult]) -> str:
    """One paragraph: what failed, on which CPU and build, and what to do."""
    tried = "; ".join(
        f"with weight repacking {'on' if r.use_extra_bufts else 'off'}: {r.detail}" for r in results
    )
    return (
        f"llama.cpp could not generate text with {model_path.name} ({tried}). "
        f"CPU: {cpu_summary()}; llama-cpp-python {llama_version()}. "
        "To fix: rebuild llama.cpp for this machine with "
        "`pip install --force-reinstall --no-cache-dir -c constraints.txt llama-cpp-python` "
        "(the version citewise tests), or use a remote model "
        "(--provider openai|anthropic); `citewise doctor` repeats this check."
    )


# -- the verdict, cached per build, model, CPU and parameters ------------------------


def cache_key(model_path: Path, use_extra_bufts: bool) -> str:
    """Changes when anything that decides whether generation works changes."""
    stat = model_path.stat()
    parts = [
        llama_version(),
        _library_stamp(),
        cpu_summary(),
        str(model_path.resolve()),
        str(stat.st_size),
        str(stat.st_mtime_ns),
        str(use_extra_bufts),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _library_stamp() -> str:
    """The compiled library's size and time: a rebuild of the same version changes it."""
    try:
        from importlib.util import find_spec

        spec = find_spec("llama_cpp")
        if spec is None or not spec.submodule_search_locations:
            return ""
        lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
        return ",".join(
            f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(lib.glob("*.so*"))
        )
    except OSError:
        return ""


def probe_until_it_works(model_path: Path) -> list[ProbeResult]:
    """Probes with this CPU's default; if the child dies with repacking on, again with it
    off. The last result is the one that worked, if any did."""
    results = [probe(model_path, default_extra_bufts())]
    if not results[0].ok and results[0].use_extra_bufts:
        results.append(probe(model_path, use_extra_bufts=False))
    return results


def checked_extra_bufts(model_path: Path, cache_dir: Path) -> bool:
    """The ``use_extra_bufts`` value that generates on this machine, checked once.

    Raises :class:`~citewise.errors.ModelError` with :func:`explain` when nothing works,
    instead of letting the crash take this process down.
    """
    from ..errors import ModelError

    def marker(use_extra_bufts: bool) -> Path:
        return cache_dir / "llama-probe" / f"{cache_key(model_path, use_extra_bufts)}.json"

    for use_extra_bufts in dict.fromkeys([default_extra_bufts(), False]):
        if marker(use_extra_bufts).is_file():
            return use_extra_bufts
    results = probe_until_it_works(model_path)
    if not results[-1].ok:
        raise ModelError(explain(model_path, results))
    target = marker(results[-1].use_extra_bufts)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(results[-1])))
    temporary.replace(target)
    return results[-1].use_extra_bufts


# -- derived copies --------------------------------------------------------------------

QUANT_TYPES = {"q8_0": 7, "f16": 1}  # llama_ftype values (llama.h)


def requantized(source: Path, quant: str, cache_dir: Path) -> Path:
    """A copy of ``source`` quantized as ``quant``, made once (in a child) and cached.

    Falls back to ``source`` with a warning when the copy cannot be made.
    """
    stat = source.stat()
    stamp = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache_dir / "models" / f"{source.stem}-{stamp.hexdigest()[:12]}-{quant}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    command = [
        sys.executable,
        "-m",
        "citewise.providers.llama_probe",
        str(source),
        "--requantize",
        quant,
        "--output",
        str(temporary),
    ]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if child.returncode != 0 or not temporary.is_file():
            raise OSError(_failure(child.returncode, child.stderr))
        temporary.replace(target)
    except (OSError, subprocess.TimeoutExpired) as exc:
        temporary.unlink(missing_ok=True)
        log.warning("could not make a %s copy of %s (%s); using the original", quant, source, exc)
        return source
    return target


def _requantize(source: str, target: str, quant: str) -> None:
    import ctypes

    from llama_cpp import llama_cpp as bindings

    params = bindings.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[quant]
    params.allow_requantize = True  # the source is already quantized (Q4_1)
    params.nthread = os.cpu_count() or 1
    if bindings.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params)):
        raise SystemExit(f"llama_model_quantize failed for {source}")


# -- the child -----------------------------------------------------------------------


def _generate(model_path: str, use_extra_bufts: bool, tokens: int) -> dict[str, object]:
    from llama_cpp import Llama

    with llama_model_params(use_extra_bufts):
        llm = Llama(model_path, n_ctx=512, n_threads=os.cpu_count() or 1, verbose=False, seed=0)
    prompt = llm.tokenize(PROBE_PROMPT.encode(), add_bos=True)
    generated: list[int] = []
    started = time.perf_counter()
    first_token_at = started
    for token in llm.generate(prompt, temp=0.0):
        if not generated:
            first_token_at = time.perf_counter()  # the prompt has been read
        if token == llm.token_eos() or len(generated) >= tokens:
            break
        generated.append(token)
    prompt_s = first_token_at - started
    generate_s = time.perf_counter() - first_token_at
    return {
        "text": llm.detokenize(generated).decode("utf-8", errors="replace"),
        "tokens": len(generated),
        # The first token came with the prompt; the rest were generated one by one.
        "tokens_per_s": round((len(generated) - 1) / max(generate_s, 1e-9), 1),
        "prompt_tokens_per_s": round(len(prompt) / max(prompt_s, 1e-9), 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m citewise.providers.llama_probe")
    parser.add_argument("model", type=Path)
    parser.add_argument("--extra-bufts", type=int, choices=(0, 1), default=None)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--requantize", choices=sorted(QUANT_TYPES), help="make a copy instead")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.requantize:
        _requantize(str(args.model), str(args.output), args.requantize)
        return
    use_extra_bufts = default_extra_bufts() if args.extra_bufts is None else bool(args.extra_bufts)
    print(json.dumps(_generate(str(args.model), use_extra_bufts, args.tokens)), flush=True)


if __name__ == "__main__":
    main()
