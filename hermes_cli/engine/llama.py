"""The one door to llama.cpp: the low-level ctypes bindings of llama-cpp-python.

We use the C API directly (llama_decode, the C sampler chain, llama_tokenize) rather
than the `Llama` class: its `generate` loop costs about 0.8 ms of Python per token (a
logits copy into numpy and Python-side sampling; measured on SmolLM2-135M: 0.87× of
llama-bench), and its constructor sets up a chat handler and a Jinja template we never
use. Everything llama.cpp prints goes through a log callback that drops it unless
--verbose, except while engine/quiet.py has silenced the output (`native_log`).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator
from typing import Any

_lib: Any = None
_verbose = False
_callback: Any = None  # kept alive: llama.cpp holds the pointer


def _bindings() -> Any:
    """`llama_cpp.llama_cpp` (the ctypes bindings) without running `llama_cpp/__init__`,
    which imports the `Llama` class and, through it, numpy, Jinja and every chat format:
    about a third of a one-shot `hermes ask`. The package module is created unexecuted;
    the first attribute asked of it that only `__init__` defines (`Llama`, `__version__`)
    runs `__init__` then, so other users of llama_cpp in the process see the whole package.
    """
    import importlib
    import importlib.util

    if "llama_cpp" not in sys.modules:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is not None and spec.loader is not None and spec.submodule_search_locations:
            package = importlib.util.module_from_spec(spec)

            def complete(name: str) -> Any:
                if name.startswith("__") and name not in ("__version__", "__all__"):
                    raise AttributeError(name)
                del package.__getattr__
                spec.loader.exec_module(package)  # type: ignore[union-attr]
                return getattr(package, name)

            package.__getattr__ = complete  # type: ignore[method-assign]
            sys.modules["llama_cpp"] = package
    return importlib.import_module("llama_cpp.llama_cpp")


def lib(*, verbose: bool | None = None) -> Any:
    """The `llama_cpp.llama_cpp` module, initialised once (backend, log routing)."""
    global _lib, _verbose, _callback
    if verbose is not None:
        _verbose = verbose
    if _lib is None:
        c = _bindings()

        @c.llama_log_callback
        def route_log(level: int, text: bytes, _user: Any) -> None:
            if _verbose:
                sys.stderr.write(text.decode("utf-8", errors="replace"))

        _callback = route_log
        c.llama_log_set(_callback, ctypes.c_void_p(0))
        c.llama_backend_init()
        _lib = c
    return _lib


@contextlib.contextmanager
def native_log() -> Iterator[None]:
    """llama.cpp's own logger (to the C stderr) instead of the Python callback, for a
    block whose output goes nowhere anyway (fds silenced: engine/quiet.py). The callback
    takes the GIL for each of the load's few hundred lines, so a thread holding the GIL
    (the grammar tokenizer built by llguidance while the model loads) stalled the load
    for as long as it ran: gemma-3 270M's load took 1.3 s instead of 0.74."""
    c = lib()
    c.llama_log_set(c.llama_log_callback(), ctypes.c_void_p(0))  # NULL: the default logger
    try:
        yield
    finally:
        c.llama_log_set(_callback, ctypes.c_void_p(0))


def version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)
