"""One BLAS thread for the small matrix products of search.

A search multiplies small matrices (the query's forward pass in the NumPy encoder) and one
matrix by a vector (the query against every stored vector). NumPy's BLAS (OpenBLAS) splits each
product over every core and its threads spin while they wait for each other; when other
processes keep the cores busy, a thread that lost its core holds the others up. Measured under
load 3-4 on two cores: the query's embedding took 270-370 ms p50 with the default threads
against 18-27 ms with one, and the product against 110k vectors (stored row by row then)
28-45 ms p50 / 78-367 ms p95 against 23-34 / 28-49 ms; the benchmark measures both settings in one run
(benchmarks/results/membrane_search.md).

So the first search limits this process's BLAS to one thread, once and for good: in MemBrane
NumPy only computes these small products (ONNX Runtime, or torch, embeds documents on threads
of its own). Set back and forth per search, the limit would not hold: OpenBLAS ignores a
thread count raised from another thread than the one that lowered it. An explicit
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is left alone, and without
``threadpoolctl`` (declared by the ``embeddings`` extra) nothing changes. On two idle cores one
thread costs about a fifth (search 40.0 / 64.3 ms p50 / p95 against 32.1 / 51.8 ms): the price
of not being 7x slower whenever the cores are shared.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["single_blas_thread"]

log = logging.getLogger(__name__)

_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_lock = threading.Lock()
_done: bool | None = None  # None: not tried yet; then whether the limit was applied


def single_blas_thread() -> bool:
    """Limit NumPy's BLAS to one thread for the rest of the process (the first call does it);
    return whether the limit is in force."""
    global _done
    if _done is not None:
        return _done
    with _lock:
        if _done is None:
            _done = _apply()
    return _done


def _apply() -> bool:
    if any(os.environ.get(name) for name in _ENV):
        return False  # the operator chose
    try:
        import numpy  # noqa: F401  (its BLAS must be loaded to be limited)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return False
    try:
        blas = ThreadpoolController().select(user_api="blas")
        blas.limit(limits=1)
        counts = {int(lib["num_threads"]) for lib in blas.info()}
    except Exception as exc:  # an unknown BLAS: run as configured
        log.info("could not limit BLAS threads: %s", exc)
        return False
    if counts - {1}:
        log.info("BLAS kept %s threads (another part of the process set them)", counts)
    return bool(counts) and counts == {1}
