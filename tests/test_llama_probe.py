"""llama.cpp runs in a child process before it runs in ours: a native crash is a report.

The first test is the one that guards the whole suite: it generates with the real
local model in a child and, if the child dies, fails with the signal, the CPU's flags
and the llama-cpp-python version instead of letting a segfault kill pytest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from llama_cpp import llama_cpp as bindings

from citewise.cpu import cpu_summary
from citewise.errors import ModelError
from citewise.providers.llama_probe import (
    checked_extra_bufts,
    default_extra_bufts,
    explain,
    llama_model_params,
    llama_version,
    probe,
    requantized,
)


@pytest.mark.slow
def test_local_model_generates_in_a_child_process(gguf_path: Path) -> None:
    result = probe(gguf_path, default_extra_bufts())
    if not result.ok:
        pytest.fail(explain(gguf_path, [result]))
    assert result.detail.strip(), "the model generated nothing"
    assert result.tokens_per_s > 0 and result.prompt_tokens_per_s > 0


def test_a_crashing_child_is_reported_with_signal_cpu_and_version(tmp_path: Path) -> None:
    # A real segmentation fault in the child, as llama.cpp's AMX kernels caused.
    segfault = [sys.executable, "-c", "import ctypes; ctypes.string_at(0)"]
    result = probe(tmp_path / "model.gguf", True, command=segfault)
    assert not result.ok
    assert result.returncode == -11
    assert "SIGSEGV (signal 11)" in result.detail
    message = explain(tmp_path / "model.gguf", [result])
    assert "weight repacking on: the process was killed by SIGSEGV" in message
    assert cpu_summary() in message and f"llama-cpp-python {llama_version()}" in message
    assert "citewise doctor" in message and "--provider openai" in message


def test_a_hanging_child_is_stopped_and_reported(tmp_path: Path) -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    result = probe(tmp_path / "model.gguf", False, timeout=1, command=hang)
    assert not result.ok and result.detail == "did not finish in 1 s"


def test_an_unloadable_model_gives_the_child_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    result = probe(broken, False)
    assert not result.ok and result.returncode == 1
    assert "exit status 1" in result.detail
    with pytest.raises(ModelError, match=r"could not generate text with broken\.gguf"):
        checked_extra_bufts(broken, tmp_path / "cache")
    assert not (tmp_path / "cache" / "llama-probe").exists()  # failures are not cached


@pytest.mark.slow
def test_the_verdict_is_cached_per_model_and_build(gguf_path: Path, tmp_path: Path) -> None:
    chosen = checked_extra_bufts(gguf_path, tmp_path)
    markers = list((tmp_path / "llama-probe").glob("*.json"))
    assert len(markers) == 1
    record = json.loads(markers[0].read_text())
    assert record["ok"] and record["use_extra_bufts"] == chosen
    assert checked_extra_bufts(gguf_path, tmp_path) == chosen
    assert list((tmp_path / "llama-probe").glob("*.json")) == markers


def test_model_params_are_set_inside_and_restored_after() -> None:
    assert bindings.llama_model_default_params().use_extra_bufts is True  # llama.cpp's default
    with llama_model_params(use_extra_bufts=False):
        assert bindings.llama_model_default_params().use_extra_bufts is False
    assert bindings.llama_model_default_params().use_extra_bufts is True


def test_repacking_is_off_exactly_on_amx_cpus() -> None:
    flags = cpu_summary()
    assert default_extra_bufts() is not ("amx_int8" in flags or "amx_tile" in flags)


@pytest.mark.slow
def test_the_default_model_gets_a_q8_copy_made_once(gguf_path: Path, tmp_path: Path) -> None:
    from llama_cpp import Llama

    copy = requantized(gguf_path, "q8_0", tmp_path)
    assert copy.parent == tmp_path / "models" and copy.name.endswith("-q8_0.gguf")
    assert requantized(gguf_path, "q8_0", tmp_path) == copy
    assert list((tmp_path / "models").iterdir()) == [copy]  # no temporary file left
    metadata = Llama(str(copy), vocab_only=True, verbose=False).metadata
    assert metadata["general.file_type"] == "7"  # LLAMA_FTYPE_MOSTLY_Q8_0
    result = probe(copy, default_extra_bufts())
    assert result.ok, explain(copy, [result])


def test_a_copy_that_cannot_be_made_falls_back_to_the_original(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    assert requantized(broken, "q8_0", tmp_path / "cache") == broken
    assert list((tmp_path / "cache" / "models").iterdir()) == []
    assert "could not make a q8_0 copy of" in caplog.text
