"""What llama.cpp was built with (for `hermes info`)."""

from __future__ import annotations


def system_info() -> str:
    """llama.cpp's own description of the compiled backends and CPU features."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def llama_cpp_version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)
