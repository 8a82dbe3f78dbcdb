"""The processes a test started by hand (pty children), so that conftest ends every one
still running when the test ends, pass or fail: a failed pty test once left `hermes chat
-m endless.gguf --ctx 0` generating for the rest of the run, slowing every later test."""

from __future__ import annotations

RUNNING: list[int] = []
