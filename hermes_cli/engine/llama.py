"""The one door to llama.cpp: the low-level ctypes bindings of llama-cpp-python.

We use the C API directly (llama_decode, the C sampler chain, llama_tokenize) rather
than the `Llama` class: its `generate` loop costs about 0.8 ms of Python per token (a
logits copy into numpy and Python-side sampling; measured on SmolLM2-135M: 0.87× of
llama-bench), and its constructor sets up a chat handler and a Jinja template we never
use. Everything llama.cpp prints goes through a log callback that drops it unless
--verbose.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

_lib: Any = None
_verbose = False
_callback: Any = None  # kept alive: llama.cpp holds the pointer


def lib(*, verbose: bool | None = None) -> Any:
    """The `llama_cpp.llama_cpp` module, initialised once (backend, log routing)."""
    global _lib, _verbose, _callback
    if verbose is not None:
        _verbose = verbose
    if _lib is None:
        from llama_cpp import llama_cpp as c

        @c.llama_log_callback
        def route_log(level: int, text: bytes, _user: Any) -> None:
            if _verbose:
                sys.stderr.write(text.decode("utf-8", errors="replace"))

        _callback = route_log
        c.llama_log_set(_callback, ctypes.c_void_p(0))
        c.llama_backend_init()
        _lib = c
    return _lib


def version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)
