"""Integer compute for ONNX embedders: a derived copy of the model with int8 MatMuls.

The packaged all-MiniLM-L6-v2 stores int8 weights, but ONNX Runtime turns them back into
float32 when the session starts, so every MatMul runs in float. This module derives a model
whose MatMuls run on the CPU's integer dot-product instructions (AVX-512 VNNI, AVX-VNNI, or
NEON dot products): weights quantized per output channel, activations per call. On the
2-core benchmark machine that is 3-4x sentence-transformers at cosine 0.995 to its vectors
(`make bench`, benchmarks/peers.py).

The recipe, in order:
1. drop the NaN guards a dynamo export puts after each attention softmax (they only matter
   for a query row with every key masked, which a [CLS]-led input never has);
2. ONNX Runtime's basic graph optimizations (constant folding turns the stored int8 weights
   into plain float initializers the quantizer can see);
3. ONNX Runtime's transformer fusions (BiasGelu; attention too in a standard export — the
   Hub's float file — though not in the packaged dynamo export);
4. ONNX Runtime's dynamic quantization of every MatMul (and fused attention), per channel.

The result is derived data: it lives in the user cache, named by the source's SHA-256 and
RECIPE, and deleting it only costs a rebuild (about 3 s).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import onnxruntime as ort

from ..config import cache_dir
from ..cpu import CPUINFO, read_cpu_flags

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

RECIPE = 2  # bump when the steps change, so cached models are rebuilt

# ONNX Runtime's SkipLayerNormalization kernel made the whole int8 model 1.3x slower on the
# benchmark machine (7.7 vs 10.1 ms per 256-token text), so that fusion stays off.
DISABLED_FUSIONS = ("SkipLayerNormFusion",)

OP_TYPES = ["MatMul", "Attention"]  # Attention: when a standard export's attention was fused

_building = threading.Lock()


def int8_model(source: Path, source_sha256: str, heads: int = 0, hidden: int = 0) -> Path:
    """The int8 version of ``source``, built on first use and cached."""
    reduce_range = needs_reduced_range()
    variant = "int8r" if reduce_range else "int8"
    target = cache_dir() / "models" / f"{source.stem}-{source_sha256[:16]}-{variant}-r{RECIPE}.onnx"
    with _building:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            log.info("building the int8 embedding model %s (once)", target)
            build_int8_model(source, target, reduce_range, heads, hidden)
    return target


def needs_reduced_range(cpuinfo: Path = CPUINFO) -> bool:
    """True on x86-64 without VNNI, where ONNX Runtime's u8s8 kernels can saturate.

    ONNX Runtime's quantization guide: AVX2/AVX-512 without VNNI multiply u8 by s8 with
    VPMADDUBSW, whose 16-bit sums can overflow; 7-bit weights (``reduce_range``) avoid it.
    VNNI, and ARM's dot-product instructions, accumulate in 32 bits.
    """
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686"}:
        return False
    flags = read_cpu_flags(cpuinfo)
    if flags is None:
        return True  # unknown x86 CPU: the safe choice
    return not {"avx512_vnni", "avx_vnni"} & flags


def build_int8_model(
    source: Path, target: Path, reduce_range: bool = False, heads: int = 0, hidden: int = 0
) -> None:
    """``heads`` and ``hidden`` (0: detect) let a standard export's attention be fused."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model = onnx.load(str(source))
    drop_softmax_nan_guards(model)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        basic, fused, quantized = (Path(scratch) / n for n in ("basic", "fused", "int8"))
        _optimize_basic(model.SerializeToString(), basic)
        options = FusionOptions("bert")
        options.enable_skip_layer_norm = False  # see DISABLED_FUSIONS
        optimize_model(
            str(basic),
            model_type="bert",
            num_heads=heads,
            hidden_size=hidden,
            optimization_options=options,
            opt_level=0,
        ).save_model_to_file(str(fused))
        with _quiet_root_logger():
            quantize_dynamic(
                fused,
                quantized,
                per_channel=True,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=OP_TYPES,
                # Fused ops are in ONNX Runtime's domain, which onnx's shape inference
                # cannot type; everything in these models is float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        # Atomic: a process that finds the file finds all of it.
        os.replace(quantized, target)


def drop_softmax_nan_guards(model: onnx.ModelProto) -> int:
    """Rewire ``Where(IsNaN(p), 0, p)`` after a softmax to ``p``; returns how many were dropped."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    replaced: dict[str, str] = {}
    dropped: set[int] = set()
    for node in graph.node:
        guard = producer.get(node.input[0]) if node.op_type == "Where" else None
        if guard is not None and guard.op_type == "IsNaN" and guard.input[0] == node.input[2]:
            replaced[node.output[0]] = node.input[2]
            dropped |= {id(node), id(guard)}
    if any(output.name in replaced for output in graph.output):
        return 0  # a guard on the model's output itself: leave the graph alone
    kept = [node for node in graph.node if id(node) not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = replaced.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    return len(replaced)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # The quantizer prints advice through the root logger, and logging through a root logger
    # with no handler would install a stderr handler for the whole process.
    root = logging.getLogger()
    placeholder, drop = logging.NullHandler(), logging.Filter("citewise-only")
    root.addHandler(placeholder)
    root.addFilter(drop)  # drops records logged on the root logger itself, not propagated ones
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(placeholder)


def _optimize_basic(model_bytes: bytes, target: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
