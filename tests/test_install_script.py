"""scripts/install-llama-cpp picks the backend from the machine (dry run: no 8-minute build)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-llama-cpp"


def dry_run(tmp_path: Path, *, fake_bins: dict[str, str], env: dict[str, str] | None = None) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, output in fake_bins.items():
        tool = bindir / name
        tool.write_text(f"#!/bin/sh\necho {output}\n")
        tool.chmod(0o755)
    path = f"{bindir}:/usr/bin:/bin"
    full_env = {"PATH": path, "HOME": str(tmp_path), **(env or {})}
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                          env=full_env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cuda_when_nvcc_and_a_gpu_are_present(tmp_path: Path) -> None:
    out = dry_run(tmp_path, fake_bins={"nvcc": "release 12.4", "nvidia-smi": "GPU 0: H100"})
    assert "backend: cuda" in out and "-DGGML_CUDA=on" in out and "-DLLAVA_BUILD=OFF" in out


def test_nvcc_without_a_gpu_builds_for_the_cpu(tmp_path: Path) -> None:
    out = dry_run(tmp_path, fake_bins={"nvcc": "release 12.4", "nvidia-smi": "x; exit 9"})
    assert "backend: cpu" in out and "GGML_CUDA" not in out


def test_metal_on_apple_silicon(tmp_path: Path) -> None:
    out = dry_run(tmp_path, fake_bins={"uname": "$( [ \"$1\" = -s ] && echo Darwin || echo arm64 )"})
    assert "backend: metal" in out and "-DGGML_METAL=on" in out


def test_cpu_otherwise(tmp_path: Path) -> None:
    out = dry_run(tmp_path, fake_bins={"nvidia-smi": "x; exit 9"})
    assert "backend: cpu" in out and "GGML_CUDA" not in out


def test_override_and_extra_flags(tmp_path: Path) -> None:
    out = dry_run(tmp_path, fake_bins={"nvcc": "x"},
                  env={"HERMES_BACKEND": "vulkan", "CMAKE_ARGS": "-DGGML_NATIVE=OFF"})
    assert "backend: vulkan" in out and "-DGGML_VULKAN=on" in out and "-DGGML_NATIVE=OFF" in out
    assert "GGML_CUDA" not in out


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                          env={**os.environ, "HERMES_BACKEND": "tpu"}, timeout=30)
    assert proc.returncode == 2 and "unknown HERMES_BACKEND" in proc.stderr
