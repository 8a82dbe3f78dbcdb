"""The first run on a real machine: a GPU that a CPU build leaves idle is named (from
files, no subprocess), a model that does not fit the GPU gets as many layers as fit, and
scripts/install builds for the machine's accelerator."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from hermes_cli.core import loading
from hermes_cli.core.gpu_hint import gpu_build, gpu_hint, gpu_present
from hermes_cli.engine import gguf, offload
from hermes_cli.engine.hardware import kv_cache_bytes
from tests import tinymodels as tm

ROOT = Path(__file__).resolve().parent.parent
CPU_INFO = "CPU : SSE3 = 1 | AVX2 = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 |"
CUDA_INFO = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | " + CPU_INFO


def fake_root(tmp_path: Path, *files: str) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("NVRM version: 570.86\n")
    return tmp_path


@pytest.mark.parametrize("files, system, machine, expected", [
    (["proc/driver/nvidia/version"], "Linux", "x86_64", "nvidia"),
    (["dev/nvidia0"], "Linux", "x86_64", "nvidia"),
    (["dev/kfd"], "Linux", "x86_64", "amd"),
    ([], "Darwin", "arm64", "apple"),
    ([], "Darwin", "x86_64", None),
    ([], "Linux", "x86_64", None),
])
def test_gpu_detection_from_files(tmp_path: Path, files, system, machine, expected) -> None:
    assert gpu_present(fake_root(tmp_path, *files), system, machine) == expected


def test_the_hint_names_the_gpu_and_the_exact_command_only_for_a_cpu_build() -> None:
    hint = gpu_hint("nvidia", False, CPU_INFO)
    assert hint is not None and hint.startswith("note: this machine has an NVIDIA GPU")
    assert 'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python' in hint
    assert "scripts/install" in hint and "\n" not in hint
    assert "-DGGML_METAL=on" in (gpu_hint("apple", False, CPU_INFO) or "")
    assert gpu_hint("nvidia", False, CUDA_INFO) is None  # a CUDA build with no usable GPU now
    assert gpu_hint("nvidia", True, CUDA_INFO) is None  # offloading already
    assert gpu_hint(None, False, CPU_INFO) is None  # no GPU at all
    assert gpu_build(CUDA_INFO) and not gpu_build(CPU_INFO)


def test_the_hint_is_printed_at_load_and_silenced_by_quiet_and_the_setting(models, monkeypatch) -> None:
    monkeypatch.setattr(loading, "gpu_present", lambda: "nvidia")

    def load(**kw) -> str:
        err = io.StringIO()
        engine = loading.load_engine(loading.LoadOptions(model=str(models["hi"]), **kw), err=err)
        engine.close()
        return err.getvalue()

    assert "note: this machine has an NVIDIA GPU" in load()
    assert load(quiet=True) == ""
    monkeypatch.setenv("HERMES_NO_GPU_HINT", "1")
    assert load() == ""


@pytest.fixture(scope="module")
def sized_models(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("sizes")
    return [tm.write_model(d / f"m{blocks}x{width}.gguf", kind="random", blocks=blocks, embedding=width)
            for blocks, width in ((2, 64), (4, 128), (8, 256))]


def test_layer_sizes_add_up_to_the_tensor_data(sized_models) -> None:
    for path in sized_models:
        sizes = offload.layer_sizes([path])
        meta = gguf.read_metadata(path)
        assert len(sizes.blocks) == meta["llama.block_count"]
        assert len(set(sizes.blocks.values())) == 1  # every layer the same shape here
        total = sum(t.nbytes for t in gguf.read_tensors(path))
        assert sum(sizes.blocks.values()) + sizes.output + sizes.embeddings == total
        assert not sizes.tied  # these models have output.weight


def test_as_many_layers_as_fit_the_last_ones_first(sized_models) -> None:
    for path in sized_models:
        meta = gguf.read_metadata(path)
        sizes = offload.layer_sizes([path])
        n_layer = len(sizes.blocks)
        per_layer = next(iter(sizes.blocks.values())) + kv_cache_bytes(meta, 2048) // n_layer
        full = offload.plan(meta, [path], 2048, 10**12)
        assert full.layers == -1 and full.offloaded == n_layer + 1
        assert offload.plan(meta, [path], 2048, full.needed).layers == -1  # exactly enough
        for k in range(n_layer):  # room for k layers (and the reserve), not k + 1
            plan = offload.plan(meta, [path], 2048, offload.RESERVE_BYTES + k * per_layer + per_layer - 1)
            assert plan.layers == k and f"{k} of {n_layer + 1} layers on the GPU" in plan.describe()
        assert offload.plan(meta, [path], 2048, offload.RESERVE_BYTES // 2).layers == 0


def test_a_longer_context_leaves_room_for_fewer_layers(sized_models) -> None:
    path = sized_models[-1]
    meta = gguf.read_metadata(path)
    budget = offload.plan(meta, [path], 2048, 10**12).needed - 1
    short = offload.plan(meta, [path], 2048, budget).layers
    long = offload.plan(meta, [path], 65536, budget).layers
    assert 0 <= long < short


@pytest.mark.parametrize("backend, flag", [("cuda", "-DGGML_CUDA=on"), ("metal", "-DGGML_METAL=on"),
                                           ("vulkan", "-DGGML_VULKAN=on"), ("hip", "-DGGML_HIP=on"),
                                           ("cpu", "")])
def test_install_dry_run_for_each_backend(backend: str, flag: str) -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install"), "--dry-run"], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "HERMES_BACKEND": backend})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"backend: {backend}"
    assert "llama-cpp-python" in lines[1] and (flag in lines[1] if flag else "GGML_CUDA" not in lines[1])
    assert lines[2].endswith("-m pip install .")
