"""What llama.cpp was built with (for `hermes info` and the GPU hint)."""

from __future__ import annotations

from hermes_cli.engine.llama import lib, version


def system_info() -> str:
    """llama.cpp's own description of the compiled backends and CPU features."""
    return str(lib().llama_print_system_info().decode("utf-8", errors="replace").strip())


def gpu_offload_supported() -> bool:
    return bool(lib().llama_supports_gpu_offload())


def llama_cpp_version() -> str:
    return version()
