"""Facts for `hermes info`: what llama.cpp was built with, what it will do on this
machine, and what a model file says about itself, as lines of plain text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hermes_cli.core.gpu_hint import gpu_hint, gpu_present
from hermes_cli.engine import devices, gguf, offload
from hermes_cli.engine.build import gpu_offload_supported, llama_cpp_version, system_info
from hermes_cli.engine.hardware import usable_cpu_count
from hermes_cli.engine.params import DEFAULT_CTX_CAP
from hermes_cli.prompt.call_format import choose, gguf_names

_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
               10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
               15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


def build_lines() -> list[str]:
    sysinfo = system_info()
    backends = [name for name in ("CUDA", "Metal", "Vulkan", "HIP", "SYCL", "BLAS")
                if name.upper() in sysinfo.upper()]
    offload = gpu_offload_supported()
    lines = [
        f"llama-cpp-python: {llama_cpp_version()}",
        f"backends: CPU{''.join(', ' + b for b in backends)}",
        f"GPU offload: {'available' if offload else 'not available (CPU only)'}",
    ]
    for gpu in devices.gpus():
        lines.append(f"GPU: {gpu.name} ({gpu.description}), {gpu.free / 1e9:.1f} of "
                     f"{gpu.total / 1e9:.1f} GB free")
    hint = gpu_hint(gpu_present(), offload, sysinfo)
    if hint:
        lines.append(hint)
    lines += [f"threads: {usable_cpu_count()} (the CPUs this process may use)",
              f"system info: {sysinfo}"]
    return lines


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


def _placement(meta: dict[str, Any], path: Path) -> str:
    """Where the layers and the KV cache go with the default --gpu-layers."""
    if not gpu_offload_supported():
        return "all on the CPU (no GPU offload in this build or on this machine); KV cache in RAM"
    trained = gguf.trained_context(meta) or 4096
    n_ctx = min(trained, DEFAULT_CTX_CAP)
    gpus = devices.gpus()
    free = sum(d.free for d in gpus)
    if free <= 0:
        return "all layers on the GPU"
    plan = offload.plan(meta, offload.model_parts(path), n_ctx, free)
    where = ("KV cache on the GPU" if plan.layers == -1
             else f"KV cache of the {plan.offloaded} offloaded layers on the GPU, the rest in RAM")
    return f"{plan.describe()} at --ctx {n_ctx}; {where}"


def model_lines(path: Path) -> list[str]:
    meta = gguf.read_metadata(path)
    arch = meta.get("general.architecture", "?")
    n_layers = meta.get(f"{arch}.block_count")
    file_type = meta.get("general.file_type")
    tokens = meta.get("tokenizer.ggml.tokens")
    placement = _placement(meta, path)
    lines = [
        f"file: {path} ({path.stat().st_size / 1e9:.2f} GB)",
        f"name: {meta.get('general.name', '?')}",
        f"architecture: {arch}",
        f"size label: {meta.get('general.size_label', '?')}",
        f"quant: {_FILE_TYPES.get(file_type, file_type) if file_type is not None else '?'}",
        f"trained context: {gguf.trained_context(meta) or '?'}",
        f"layers: {n_layers if n_layers is not None else '?'}; by default {placement}",
        f"vocabulary: {int(tokens) if tokens is not None else '?'} tokens "
        f"({meta.get('tokenizer.ggml.model', '?')})",
        f"chat template: {_template_kind(meta.get('tokenizer.chat_template'))}",
        "tool calls: {} ({}; --call-format or the config's call_format overrides)".format(
            *choose(None, *gguf_names(meta, path.name))),
    ]
    for key in ("bos", "eos", "eot", "padding"):
        value = meta.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None:
            lines.append(f"{key} token id: {value}")
    return lines
