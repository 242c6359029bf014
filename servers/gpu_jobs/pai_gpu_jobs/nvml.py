"""Local GPU readings through NVML (``nvidia-ml-py``), loaded on first use.

Where NVML cannot load (no driver, no GPU, the package missing) the readings say so and why;
nothing is estimated.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Nvml"]


class Nvml:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: str | None = None  # None: not tried; "ok"; else why it is unavailable
        self._mod: Any = None

    def _load(self) -> bool:
        with self._lock:
            if self._state is None:
                try:
                    import pynvml

                    pynvml.nvmlInit()
                    self._mod, self._state = pynvml, "ok"
                except ImportError:
                    self._state = "unavailable: nvidia-ml-py is not installed"
                except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
                    self._state = f"unavailable: NVML did not load ({exc})"
            return self._state == "ok"

    def status(self) -> str:
        self._load()
        assert self._state is not None
        return self._state

    def devices(self) -> dict[str, dict[str, Any]]:
        """Readings per GPU index (as a string); empty where NVML is unavailable."""
        if not self._load():
            return {}
        nv = self._mod
        out: dict[str, dict[str, Any]] = {}
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception:
            return {}
        for i in range(count):
            reading: dict[str, Any] = {}
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                name = nv.nvmlDeviceGetName(handle)
                reading["name"] = name.decode() if isinstance(name, bytes) else str(name)
                mem = nv.nvmlDeviceGetMemoryInfo(handle)
                reading["memory_used_bytes"] = int(mem.used)
                reading["memory_total_bytes"] = int(mem.total)
                util = nv.nvmlDeviceGetUtilizationRates(handle)
                reading["utilization_gpu_pct"] = int(util.gpu)
                reading["utilization_memory_pct"] = int(util.memory)
            except Exception as exc:
                reading["error"] = f"unavailable: {exc}"
            out[str(i)] = reading
        return out
