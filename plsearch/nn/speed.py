"""Speed switches for training and inference, and the machine's matmul peak to judge them against.

Everything here is opt-in and leaves the model's forward contract alone:

- ``matmul_peak_flops(device)``: the best FLOP/s of a large matmul (fp32 on CPU, bf16 on CUDA),
  the yardstick for "achieved FLOP/s = 2 x MACs / time" (DESIGN.md section 6).
- ``configure_backends(device)``: cuDNN autotuning and TF32 on CUDA (no-op elsewhere).
- ``autocast(device)``: bf16 autocast on CUDA, a no-op context on CPU (no bf16 units here);
  ``memory_format(device, ndim)``: channels-last on CUDA; ``cuda_paths_on("cpu")`` turns both on for
  a CPU (tests of the CUDA branch); ``cap_cuda_memory``: a per-process share of one GPU.
- ``to_channels_last(model_or_tensor)``: NHWC / NDHWC memory format. Measured on a 2-core AVX2
  CPU (``benchmarks/speed_sweep.py``): PL-Net inference 1.2-1.3x faster, training 5-10 % slower
  (oneDNN's NHWC weight gradients and BatchNorm backward), and CPU channels-last BatchNorm
  computes batch statistics ~100x less accurately (still ~1e-6). ``fit()`` uses it on CUDA only.
- ``fuse_for_inference(model)``: a copy with eval BatchNorm folded into the convs (PLNet).
- ``compile_model(model)``: ``torch.compile`` when it is available. Off by default: on that CPU it
  took 5-10 minutes to compile PL-Net's train step and ran it at -7 % .. +1 %; on a GPU, where
  BatchNorm/ReLU/concat passes cost more next to tensor-core convs, fusing them is what it is for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from typing import ContextManager, Iterator, TypeVar

import torch
from torch import nn

__all__ = [
    "matmul_peak_flops",
    "configure_backends",
    "autocast",
    "cuda_paths_on",
    "memory_format",
    "cap_cuda_memory",
    "to_channels_last",
    "fuse_for_inference",
    "compile_available",
    "compile_model",
]

log = logging.getLogger(__name__)

T = TypeVar("T", nn.Module, torch.Tensor)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(
    device: str | torch.device = "cpu", *, dtype: torch.dtype | None = None, n: int | None = None, repeats: int = 5
) -> float:
    """Best achieved FLOP/s of an ``n x n @ n x n`` matmul (``2 n^3`` FLOP), best of ``repeats``.

    Defaults: fp32, n=2048 on CPU (sgemm); bf16, n=8192 on CUDA (tensor cores). Measure it in the
    same process as the figures it judges: on a shared machine both move with the load.
    """
    dev = torch.device(device)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    n = n or (8192 if dev.type == "cuda" else 2048)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: thread pool, cuBLAS handle
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def configure_backends(device: str | torch.device) -> None:
    """Let cuDNN pick the fastest conv algorithms (fixed input sizes) and allow TF32 on CUDA."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# Device types that get mixed precision and channels-last in fit() and evaluation: CUDA only by
# default (CPUs without bf16 units get slower, and channels-last trains 5-10 % slower there).
# ``cuda_paths_on`` adds a device type for a block, so tests run the CUDA branch on a CPU.
_AMP_DTYPE: dict[str, torch.dtype] = {"cuda": torch.bfloat16}
_CHANNELS_LAST: set[str] = {"cuda"}


@contextlib.contextmanager
def cuda_paths_on(
    device_type: str = "cpu", *, amp: torch.dtype | None = torch.bfloat16, channels_last: bool = True
) -> Iterator[None]:
    """Within the block, ``autocast`` and ``memory_format`` treat ``device_type`` as they treat CUDA.

    For tests and CPU proxies of the CUDA branch (``amp``: the autocast dtype, None leaves it off);
    process-wide state, so not for concurrent threads.
    """
    old_amp, old_cl = dict(_AMP_DTYPE), set(_CHANNELS_LAST)
    if amp is not None:
        _AMP_DTYPE[device_type] = amp
    if channels_last:
        _CHANNELS_LAST.add(device_type)
    try:
        yield
    finally:
        _AMP_DTYPE.clear()
        _AMP_DTYPE.update(old_amp)
        _CHANNELS_LAST.clear()
        _CHANNELS_LAST.update(old_cl)


def autocast(device: str | torch.device, enabled: bool = True) -> ContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere (unless ``cuda_paths_on`` says otherwise)."""
    dev = torch.device(device)
    dtype = _AMP_DTYPE.get(dev.type) if enabled else None
    if dtype is not None:
        return torch.autocast(dev.type, dtype=dtype)
    return contextlib.nullcontext()


def memory_format(device: str | torch.device, ndim: int) -> torch.memory_format | None:
    """The layout fit() and evaluation give ``ndim``-D batches and models on ``device``:
    channels_last (4D) / channels_last_3d (5D) on CUDA, None (leave it) elsewhere."""
    if torch.device(device).type not in _CHANNELS_LAST:
        return None
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)


def cap_cuda_memory(device: str | torch.device, fraction: float | None) -> bool:
    """Cap this process's CUDA allocator at ``fraction`` of ``device``'s memory (several workers on one
    GPU: one runaway trial then fails alone with an out-of-memory error). False where nothing was capped."""
    dev = torch.device(device)
    if fraction is None or dev.type != "cuda":
        return False
    if not 0 < fraction <= 1:
        raise ValueError(f"CUDA memory fraction {fraction} is outside (0, 1]; use 1 / workers per device")
    torch.cuda.set_per_process_memory_fraction(fraction, dev.index if dev.index is not None else 0)
    return True


def to_channels_last(obj: T) -> T:
    """``obj`` in channels-last memory format (4D: NHWC, 5D: NDHWC); modules are converted in place."""
    if isinstance(obj, torch.Tensor):
        fmt = torch.channels_last_3d if obj.dim() == 5 else torch.channels_last
        return obj.contiguous(memory_format=fmt) if obj.dim() in (4, 5) else obj
    dims = getattr(getattr(obj, "config", None), "spatial_dims", None)
    if dims is None:  # not a PLNet: look at the first conv
        conv = next((m for m in obj.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))), None)
        dims = 3 if conv is not None else 2
    return obj.to(memory_format=torch.channels_last_3d if dims == 3 else torch.channels_last)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-only copy with BatchNorm folded into the convs (see ``PLNet.fuse_for_inference``).

    Outputs equal the eval-mode model's up to float rounding (a test holds them within 1e-4
    relative). Only PLNet knows how its per-application norms fold; other modules raise TypeError.
    """
    fuse = getattr(model, "fuse_for_inference", None)
    if fuse is None:
        raise TypeError(f"{type(model).__name__} has no fuse_for_inference(); only PLNet models can be fused")
    return fuse()


def compile_available(device: str | torch.device = "cpu") -> bool:
    """Whether ``torch.compile`` can run here (dynamo supported; a C++ compiler for CPU code)."""
    if not hasattr(torch, "compile"):
        return False
    try:
        from torch import _dynamo

        if not _dynamo.is_dynamo_supported():
            return False
    except Exception:  # pragma: no cover - very old or stripped builds
        return False
    if torch.device(device).type == "cpu":
        return shutil.which(os.environ.get("CXX", "g++")) is not None or shutil.which("c++") is not None
    return True


def compile_model(
    model: nn.Module, *, mode: str | None = None, dynamic: bool | None = None, device: str | torch.device | None = None
) -> nn.Module:
    """``torch.compile(model)``, or ``model`` itself (with a warning) where compiling cannot work.

    The returned wrapper shares ``model``'s parameters: train through it, but save and load
    ``model.state_dict()`` (the wrapper's keys carry an ``_orig_mod.`` prefix). The first calls
    compile (5-10 minutes on a 2-core CPU for PL-Net's train step; a new input shape compiles
    again unless ``dynamic=True``). ``mode``: ``None``, ``"reduce-overhead"`` (CUDA graphs) or ``"max-autotune"``.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
    if not compile_available(device):
        log.warning("torch.compile is not available here; running the model uncompiled")
        return model
    plan = getattr(model, "compiled_plan", None)
    if plan is not None:  # PLNet generates its forward with exec() on first use, which dynamo cannot trace
        for all_stages in (True, False):  # (a graph break per call, 20x slower to compile): build both modes now
            for training in (True, False):
                plan(all_stages, training)
    return torch.compile(model, mode=mode, dynamic=dynamic)
