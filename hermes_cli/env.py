"""Defaults and every environment variable hermes-cli reads, in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_REF = "NousResearch/Hermes-2-Theta-Llama-3-8B-GGUF:Q4_K_M"
APP_NAME = "hermes-cli"


def default_model_ref() -> str:
    """`HERMES_MODEL` when set, else Hermes 2 Θ Q4_K_M."""
    return os.environ.get("HERMES_MODEL") or DEFAULT_MODEL_REF


def model_from_env() -> str | None:
    """`HERMES_MODEL`, or None when it is not set."""
    return os.environ.get("HERMES_MODEL") or None


def debug() -> bool:
    """`HERMES_DEBUG=1` shows tracebacks instead of one-line errors."""
    return os.environ.get("HERMES_DEBUG", "") not in ("", "0")


def no_color() -> bool:
    return "NO_COLOR" in os.environ


def data_dir() -> Path:
    """Where history and saved conversations live (`HERMES_DATA_DIR` overrides)."""
    override = os.environ.get("HERMES_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    """Where derived data that can be rebuilt lives (`HERMES_CACHE_DIR` overrides)."""
    override = os.environ.get("HERMES_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def tool_start_method() -> str | None:
    """`HERMES_TOOL_START_METHOD` (fork, spawn, forkserver): how tool processes start."""
    value = os.environ.get("HERMES_TOOL_START_METHOD")
    return value if value in ("fork", "spawn", "forkserver") else None


def retry_base_seconds() -> float:
    """`HERMES_RETRY_BASE_SECONDS`: the first wait before retrying a server (default 1)."""
    try:
        return max(0.0, float(os.environ.get("HERMES_RETRY_BASE_SECONDS", "1")))
    except ValueError:
        return 1.0


def gpu_hint_silenced() -> bool:
    """`HERMES_NO_GPU_HINT=1`: no note about a GPU that a CPU-only build leaves idle."""
    return os.environ.get("HERMES_NO_GPU_HINT", "") not in ("", "0")


def endpoints() -> list[str]:
    """`HERMES_ENDPOINT`: served engines to use instead of a local model (comma-separated)."""
    return [u.strip() for u in os.environ.get("HERMES_ENDPOINT", "").split(",") if u.strip()]


def mcp_start_timeout() -> float:
    """`HERMES_MCP_START_TIMEOUT`: seconds an MCP server may take to start (default 30)."""
    try:
        return max(0.1, float(os.environ.get("HERMES_MCP_START_TIMEOUT", "30")))
    except ValueError:
        return 30.0
