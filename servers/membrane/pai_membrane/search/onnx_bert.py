"""An ONNX Runtime encoder for the models :mod:`pai_membrane.search.bert` reproduces: the same
weights, tokenizer and pooling, run by ONNX Runtime's fused BERT kernels, with no torch.

Why it exists: embedding is most of what ingestion costs, and a learning is embedded about
twice (its whole text, then its parts). On two cores this engine embedded learnings ~1.5x as
fast as sentence-transformers (torch) and a query in about half the NumPy encoder's time
(benchmarks/results/membrane_search.md); and it keeps its speed when other processes share the
cores, where torch's spinning threads lose most of theirs.

The graph is built in memory from the model's own files (``config.json``,
``model.safetensors``): no export step, nothing written to disk, no torch. It uses ONNX
Runtime's contrib operators for BERT (``EmbedLayerNormalization``, ``Attention``,
``SkipLayerNormalization``, ``BiasGelu``), then mean pooling over the real tokens and
normalisation, as sentence-transformers does; the tests check its vectors against
sentence-transformers'.

Threads: the session runs each call on one thread (a query takes one core and no more, so a
search never waits for a thread that lost its core); a larger batch is cut into slices that
run side by side, one per worker, up to ``workers`` (the cores, at most four).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pai_membrane.search import onnx_proto as proto
from pai_membrane.search.bert import load_tokenizer, padded_batches

__all__ = ["OnnxBertEncoder", "available"]

_MS = "com.microsoft"
_INT32, _FLOAT32 = proto.DATA_TYPES["int32"], proto.DATA_TYPES["float32"]
MAX_WORKERS = 4
MIN_SLICE = 4  # texts: smaller slices cost more in overhead than they gain side by side


def available() -> bool:
    """Whether ONNX Runtime is installed (what reads the model's files is the NumPy encoder's:
    :func:`pai_membrane.search.vectors.LocalEmbedder` checks for it either way)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class OnnxBertEncoder:
    """Normalised float32 sentence vectors; the session is built on first :meth:`embed`."""

    def __init__(
        self, model_dir: str | Path, batch_size: int = 32, workers: int | None = None
    ) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.workers = workers or max(1, min(os.cpu_count() or 1, MAX_WORKERS))
        self.dim = 384
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                import json

                import onnxruntime as ort

                config = json.loads((self.model_dir / "config.json").read_text("utf-8"))
                tokenizer = load_tokenizer(self.model_dir, config)
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.log_severity_level = 3  # warnings about unused initialisers and the like
                graph = build_graph(self.model_dir, config)
                session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
                self.dim = int(config["hidden_size"])
                if self.workers > 1:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pai-embed")
                self._loaded = (tokenizer, session)
        return self._loaded

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        tokenizer, session = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        # Slices small enough that every worker gets one, and no larger than a batch.
        per_worker = math.ceil(len(encodings) / self.workers)
        size = min(self.batch_size, max(MIN_SLICE, per_worker))

        def run(batch: tuple[list[int], Any, Any]) -> None:
            rows, ids, mask = batch
            out[rows] = session.run(None, {"ids": ids, "mask": mask})[0]

        batches = list(padded_batches(encodings, size))
        if self._pool is None or len(batches) < 2:
            for batch in batches:
                run(batch)
        else:
            for _ in self._pool.map(run, batches):  # re-raises the first failure
                pass
        return out


def build_graph(model_dir: Path, config: dict[str, Any]) -> bytes:
    """The serialised ONNX model: ``ids`` and ``mask`` (int64, batch x tokens, right-padded)
    in, ``vec`` (float32, batch x hidden, unit length) out."""
    import numpy as np
    from safetensors.numpy import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    eps = float(config["layer_norm_eps"])
    inits: list[proto.Message] = []
    nodes: list[proto.Message] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(proto.tensor(name, np.asarray(value, dtype=dtype)))
        return name

    def w(key: str) -> Any:
        return weights[key]

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(proto.node(op, inputs, [output], domain, **attrs))
        return output

    def skip_norm(x: str, skip: str, prefix: str, bias: str, out: str) -> str:
        g, b = (
            const(out + "_g", w(prefix + "LayerNorm.weight")),
            const(out + "_b", w(prefix + "LayerNorm.bias")),
        )
        return node(
            "SkipLayerNormalization",
            [x, skip, g, b, const(out + "_bias", w(bias))],
            out,
            _MS,
            epsilon=eps,
        )

    e = "embeddings."
    ids32 = node("Cast", ["ids"], "ids32", to=_INT32)
    mask32 = node("Cast", ["mask"], "mask32", to=_INT32)
    segments = node("Mul", [ids32, const("zero", 0, np.int32)], "segments")
    tables = [
        e + "word_embeddings.weight",
        e + "position_embeddings.weight",
        e + "token_type_embeddings.weight",
    ]
    embed_inputs = [ids32, segments, *(const(t, w(t)) for t in tables)]
    embed_inputs += [
        const("emb_g", w(e + "LayerNorm.weight")),
        const("emb_b", w(e + "LayerNorm.bias")),
        mask32,
    ]
    nodes.append(
        proto.node("EmbedLayerNormalization", embed_inputs, ["h0", "lengths"], _MS, epsilon=eps)
    )
    x = "h0"
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        qkv = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
        qkv_w = const(f"qkv_w{i}", np.concatenate([w(n + ".weight") for n in qkv]).T)
        qkv_b = const(f"qkv_b{i}", np.concatenate([w(n + ".bias") for n in qkv]))
        heads = int(config["num_attention_heads"])
        ctx = node("Attention", [x, qkv_w, qkv_b, "lengths"], f"ctx{i}", _MS, num_heads=heads)
        a = p + "attention.output."
        proj = node("MatMul", [ctx, const(f"o_w{i}", w(a + "dense.weight").T)], f"proj{i}")
        x1 = skip_norm(proj, x, a, a + "dense.bias", f"x1_{i}")
        up = node("MatMul", [x1, const(f"in_w{i}", w(p + "intermediate.dense.weight").T)], f"up{i}")
        act = node(
            "BiasGelu", [up, const(f"in_b{i}", w(p + "intermediate.dense.bias"))], f"act{i}", _MS
        )
        o = p + "output."
        down = node("MatMul", [act, const(f"out_w{i}", w(o + "dense.weight").T)], f"down{i}")
        x = skip_norm(down, x1, o, o + "dense.bias", f"h{i + 1}")
    # mean over the real tokens, then unit length (sentence-transformers' Pooling + Normalize)
    maskf = node("Cast", ["mask"], "maskf", to=_FLOAT32)
    weight = node("Unsqueeze", [maskf, const("axis2", [2], np.int64)], "weight")
    axis1 = const("axis1", [1], np.int64)
    summed = node("ReduceSum", [node("Mul", [x, weight], "masked"), axis1], "summed", keepdims=0)
    count = node("ReduceSum", [weight, axis1], "count", keepdims=0)
    pooled = node("Div", [summed, node("Max", [count, const("tiny", 1e-9)], "n")], "pooled")
    length = node("ReduceL2", [pooled], "length", axes=[1], keepdims=1)  # axes: opset 17
    node("Div", [pooled, node("Max", [length, const("floor", 1e-12)], "l")], "vec")
    return proto.model(
        nodes,
        inits,
        [proto.value_info(n, "int64", ["batch", "tokens"]) for n in ("ids", "mask")],
        [proto.value_info("vec", "float32", ["batch", int(config["hidden_size"])])],
        {"": 17, _MS: 1},
        ir_version=8,  # opset 17's; read by every ONNX Runtime since 1.13
        name="sentence_encoder",
    )
