"""A NumPy encoder for sentence-transformers models of the BERT family (all-MiniLM-L6-v2 and
its kin): the same weights, tokenizer and pooling, with no torch.

Why it exists: a search embeds one short query, and there torch costs more than it computes.
Importing it takes 5-14 s (the first search of a session waited for it), and its thread pool
keeps spinning after a call, slowing the matrix product that follows: at 110k documents hybrid
search measured p50 46 / p95 147 ms with sentence-transformers for the query and 24 / 29 ms
with this encoder (benchmarks/results/membrane_search.md). Batches of documents still go to
sentence-transformers when it is installed, which is ~3x faster there.

It loads only models it can reproduce exactly: a ``BertModel`` with absolute positions and
GELU, mean pooling, and normalisation, as sentence-transformers saves them
(``modules.json``, ``config.json``, ``1_Pooling/config.json``, ``tokenizer.json``,
``model.safetensors``). :func:`compatible` says whether a model directory is one; the tests
check its vectors against sentence-transformers'.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NumpyBertEncoder", "compatible", "load_tokenizer", "padded_batches"]

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def compatible(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` holds a model this encoder reproduces exactly."""
    root = Path(model_dir)
    try:
        modules = [m["type"] for m in _read(root / "modules.json")]
        config = _read(root / "config.json")
        pooling_dir = next(
            (m["path"] for m in _read(root / "modules.json") if m["type"] == _POOLING), ""
        )
        pooling = _read(root / pooling_dir / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    other_pooling = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    return (
        modules == [_TRANSFORMER, _POOLING, _NORMALIZE]
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and other_pooling == ["pooling_mode_mean_tokens"]
        and (root / "tokenizer.json").is_file()
        and (root / "model.safetensors").is_file()
    )


def _erf(x: Any) -> Any:
    """erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below float32's step)."""
    import numpy as np

    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t) * t
    poly += 0.254829592 * t
    return np.sign(x) * (1.0 - poly * np.exp(-a * a))


def load_tokenizer(model_dir: Path, config: dict[str, Any]) -> Any:
    """The model's tokenizer, truncating where sentence-transformers does, without padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    try:
        max_len = int(_read(model_dir / "sentence_bert_config.json")["max_seq_length"])
    except (OSError, ValueError, KeyError):
        max_len = 512
    tokenizer.no_padding()
    tokenizer.enable_truncation(min(max_len, int(config["max_position_embeddings"])))
    return tokenizer


def padded_batches(encodings: Sequence[Any], size: int) -> Iterator[tuple[list[int], Any, Any]]:
    """Batches of at most ``size`` encodings, longest first so each pads to lengths that are
    close: (their positions in ``encodings``, token ids, mask), both int64 and right-padded."""
    import numpy as np

    order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        width = len(encodings[chunk[0]].ids)
        ids = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, i in enumerate(chunk):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        yield chunk, ids, mask


class NumpyBertEncoder:
    """Normalised float32 sentence vectors; the weights load on first :meth:`embed`."""

    def __init__(self, model_dir: str | Path, batch_size: int = 32) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.dim = 384
        self._lock = threading.Lock()
        self._loaded: tuple[Any, dict[str, Any], list[tuple[Any, ...]], dict[str, Any]] | None
        self._loaded = None

    def _load(self) -> tuple[Any, dict[str, Any], list[tuple[Any, ...]], dict[str, Any]]:
        with self._lock:
            if self._loaded is None:
                import numpy as np
                from safetensors.numpy import load_file

                config = _read(self.model_dir / "config.json")
                raw = load_file(str(self.model_dir / "model.safetensors"))
                weights = {k: v.astype(np.float32) for k, v in raw.items()}
                layers = []
                for i in range(int(config["num_hidden_layers"])):
                    p = f"encoder.layer.{i}."
                    qkv = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
                    layers.append(
                        (
                            np.ascontiguousarray(
                                np.concatenate([weights[n + ".weight"] for n in qkv]).T
                            ),
                            np.concatenate([weights[n + ".bias"] for n in qkv]),
                            np.ascontiguousarray(weights[p + "attention.output.dense.weight"].T),
                            weights[p + "attention.output.dense.bias"],
                            weights[p + "attention.output.LayerNorm.weight"],
                            weights[p + "attention.output.LayerNorm.bias"],
                            np.ascontiguousarray(weights[p + "intermediate.dense.weight"].T),
                            weights[p + "intermediate.dense.bias"],
                            np.ascontiguousarray(weights[p + "output.dense.weight"].T),
                            weights[p + "output.dense.bias"],
                            weights[p + "output.LayerNorm.weight"],
                            weights[p + "output.LayerNorm.bias"],
                        )
                    )
                embeddings = {
                    k.removeprefix("embeddings."): v
                    for k, v in weights.items()
                    if k.startswith("embeddings.")
                }
                tokenizer = load_tokenizer(self.model_dir, config)
                self.dim = int(config["hidden_size"])
                self._loaded = (tokenizer, embeddings, layers, config)
        return self._loaded

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        tokenizer, _, _, _ = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        for chunk, ids, mask in padded_batches(encodings, self.batch_size):
            out[chunk] = self._forward(ids, mask.astype(np.float32))
        return out

    def _forward(self, ids: Any, mask: Any) -> Any:
        import numpy as np

        _, emb, layers, config = self._load()
        eps = float(config["layer_norm_eps"])
        heads = int(config["num_attention_heads"])
        batch, width = ids.shape
        dim = self.dim
        head = dim // heads

        def norm(x: Any, gamma: Any, beta: Any) -> Any:
            centred = x - x.mean(-1, keepdims=True)
            var = (centred * centred).mean(-1, keepdims=True)
            return centred / np.sqrt(var + eps) * gamma + beta

        x = (
            emb["word_embeddings.weight"][ids]
            + emb["position_embeddings.weight"][:width]
            + emb["token_type_embeddings.weight"][0]
        )
        x = norm(x, emb["LayerNorm.weight"], emb["LayerNorm.bias"]).reshape(batch * width, dim)
        padding = ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head))
        for w_qkv, b_qkv, w_o, b_o, g1, b1, w_in, b_in, w_out, b_out, g2, b2 in layers:
            qkv = (x @ w_qkv + b_qkv).reshape(batch, width, 3, heads, head)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + padding
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, dim)
            x = norm(context @ w_o + b_o + x, g1, b1)
            hidden = x @ w_in + b_in
            hidden = hidden * np.float32(0.5) * (1.0 + _erf(hidden * np.float32(1 / math.sqrt(2))))
            x = norm(hidden @ w_out + b_out + x, g2, b2)
        tokens = x.reshape(batch, width, dim) * mask[:, :, None]
        pooled = tokens.sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        lengths = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(lengths, 1e-12)).astype(np.float32)
