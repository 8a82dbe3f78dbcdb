"""The one line that says a GPU sits idle: llama.cpp was built for the CPU on a machine
with a usable GPU (its source build enables CUDA only when told to). An 8B model then
runs at ~5 tokens/s instead of ~100, and nothing else would say why.

Detection reads files only (no subprocess on the start-up path): the NVIDIA driver
(/proc/driver/nvidia/version, /dev/nvidia0), ROCm (/dev/kfd), Apple Silicon (the
platform). Silenced by --quiet and HERMES_NO_GPU_HINT=1.
"""

from __future__ import annotations

import platform
from pathlib import Path

_GPU_BACKENDS = ("CUDA", "METAL", "MTL", "VULKAN", "HIP", "ROCM", "SYCL", "MUSA", "CANN", "OPENCL")


def gpu_present(root: Path = Path("/"), system: str | None = None, machine: str | None = None) -> str | None:
    """"nvidia", "amd" or "apple" when this machine has a GPU llama.cpp could use."""
    system = system or platform.system()
    machine = machine or platform.machine()
    if system == "Darwin" and machine == "arm64":
        return "apple"
    if (root / "proc/driver/nvidia/version").exists() or (root / "dev/nvidia0").exists():
        return "nvidia"
    if (root / "dev/kfd").exists():
        return "amd"
    return None


def gpu_build(system_info: str) -> bool:
    """Was llama.cpp compiled with a GPU backend? (its system info names them)"""
    upper = system_info.upper()
    return any(f"{name} :" in upper or f"{name}=" in upper or f"{name}:" in upper
               for name in _GPU_BACKENDS)


_REBUILD = {
    "nvidia": ("an NVIDIA GPU", "CUDA", "-DGGML_CUDA=on", " (needs the CUDA toolkit: nvcc)"),
    "amd": ("an AMD GPU", "ROCm", "-DGGML_HIP=on", " (needs ROCm)"),
    "apple": ("an Apple Silicon GPU", "Metal", "-DGGML_METAL=on", ""),
}


def gpu_hint(present: str | None, offload_supported: bool, system_info: str) -> str | None:
    """The hint's text, or None when there is nothing to say."""
    if present is None or offload_supported or gpu_build(system_info):
        return None
    what, backend, flag, needs = _REBUILD[present]
    return (f"note: this machine has {what} but llama.cpp was built for the CPU only; rebuild "
            f"it for {backend}{needs}: scripts/install, or CMAKE_ARGS=\"{flag}\" pip install "
            "--force-reinstall --no-cache-dir llama-cpp-python (--quiet or HERMES_NO_GPU_HINT=1 "
            "hides this)")
