"""The compute devices llama.cpp sees (ggml's backend registry): GPUs with their free
and total memory, and the CPU. llama-cpp-python does not bind these calls, so they are
declared here over the ggml library it ships; without that library, only "CPU" is known.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}  # enum ggml_backend_dev_type


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: str  # "cpu", "gpu", "igpu" (integrated), "accel"
    free: int  # bytes of memory free now (0 when llama.cpp cannot tell)
    total: int


def _ggml() -> Any | None:
    try:
        from llama_cpp import _ggml  # the library llama-cpp-python loads for llama.cpp

        lib = _ggml.libggml
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
            fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_char_p
        lib.ggml_backend_dev_type.argtypes, lib.ggml_backend_dev_type.restype = [ctypes.c_void_p], ctypes.c_int
        lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                                ctypes.POINTER(ctypes.c_size_t)]
        return lib
    except (ImportError, AttributeError, OSError):
        return None


def devices() -> list[Device]:
    """Every device llama.cpp can run on, GPUs first as llama.cpp orders them."""
    from hermes_cli.engine.llama import lib as llama

    llama()  # the backends register when llama.cpp initialises
    ggml = _ggml()
    if ggml is None:
        return [Device("CPU", "CPU", "cpu", 0, 0)]
    found = []
    for i in range(int(ggml.ggml_backend_dev_count())):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        found.append(Device((ggml.ggml_backend_dev_name(dev) or b"?").decode(errors="replace"),
                            (ggml.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
                            _KINDS.get(int(ggml.ggml_backend_dev_type(dev)), "?"),
                            int(free.value), int(total.value)))
    return found


def gpus() -> list[Device]:
    return [d for d in devices() if d.kind in ("gpu", "igpu")]
