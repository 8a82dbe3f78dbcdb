"""Facts for `hermes info`: what llama.cpp was built with, what it will do on this
machine, and what a model file says about itself, as lines of plain text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hermes_cli.engine import gguf
from hermes_cli.engine.build import gpu_offload_supported, llama_cpp_version, system_info
from hermes_cli.engine.hardware import usable_cpu_count

_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
               10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
               15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


def build_lines() -> list[str]:
    sysinfo = system_info()
    backends = [name for name in ("CUDA", "Metal", "Vulkan", "HIP", "SYCL", "BLAS")
                if name.upper() in sysinfo.upper()]
    offload = gpu_offload_supported()
    return [
        f"llama-cpp-python: {llama_cpp_version()}",
        f"backends: CPU{''.join(', ' + b for b in backends)}",
        f"GPU offload: {'available' if offload else 'not available (CPU only)'}",
        f"threads: {usable_cpu_count()} (the CPUs this process may use)",
        f"system info: {sysinfo}",
    ]


def _template_kind(template: Any) -> str:
    if not isinstance(template, str):
        return "none"
    if "<|im_start|>" in template:
        return "ChatML"
    if "<|start_header_id|>" in template:
        return "Llama-3"
    if "<start_of_turn>" in template:
        return "Gemma"
    return "other"


def model_lines(path: Path) -> list[str]:
    meta = gguf.read_metadata(path)
    arch = meta.get("general.architecture", "?")
    n_layers = meta.get(f"{arch}.block_count")
    file_type = meta.get("general.file_type")
    tokens = meta.get("tokenizer.ggml.tokens")
    offload = gpu_offload_supported()
    lines = [
        f"file: {path} ({path.stat().st_size / 1e9:.2f} GB)",
        f"name: {meta.get('general.name', '?')}",
        f"architecture: {arch}",
        f"size label: {meta.get('general.size_label', '?')}",
        f"quant: {_FILE_TYPES.get(file_type, file_type) if file_type is not None else '?'}",
        f"trained context: {gguf.trained_context(meta) or '?'}",
        f"layers: {n_layers if n_layers is not None else '?'}; on the GPU by default: "
        f"{(n_layers + 1 if isinstance(n_layers, int) else 'all') if offload else 0}",
        f"vocabulary: {int(tokens) if tokens is not None else '?'} tokens "
        f"({meta.get('tokenizer.ggml.model', '?')})",
        f"chat template: {_template_kind(meta.get('tokenizer.chat_template'))}",
    ]
    for key in ("bos", "eos", "eot", "padding"):
        value = meta.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None:
            lines.append(f"{key} token id: {value}")
    return lines
