"""Facts about the machine this process may use, without importing llama_cpp."""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpu_count() -> int:
    """CPUs this process may actually run on: affinity mask, then cgroup quota.

    `os.cpu_count()` reports the host's CPUs; in a container limited by a CPU quota or a
    taskset, using that many threads oversubscribes and makes llama.cpp slower, not faster.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPU quota of this process's cgroup, rounded up, or None when unlimited."""
    try:  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        pass
    return None


def kv_cache_bytes(meta: dict[str, object], n_ctx: int) -> int | None:
    """The KV cache a context of `n_ctx` tokens needs (f16 keys and values, every layer),
    from the GGUF header; None when the header lacks the sizes. Models with sliding-window
    layers need less: this is an upper bound."""
    arch = meta.get("general.architecture")

    def number(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, (list, tuple)) and value:
            value = max(value)  # per-layer values: the largest
        return int(value) if isinstance(value, (int, float)) else None

    layers, embd, heads = number("block_count"), number("embedding_length"), number("attention.head_count")
    if not layers or not embd or not heads:
        return None
    kv_heads = number("attention.head_count_kv") or heads
    k_dim = number("attention.key_length") or embd // heads
    v_dim = number("attention.value_length") or embd // heads
    return layers * n_ctx * kv_heads * (k_dim + v_dim) * 2


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Memory the system can give without swapping (Linux's MemAvailable); None elsewhere."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
