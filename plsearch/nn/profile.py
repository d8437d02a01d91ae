"""Measure a model before training: parameters, MACs (fvcore), latency and peak inference memory.

``plsearch.profile(model, 224)`` (the facade's name for ``profile`` here) works on any ``nn.Module`` taking
``(b, c, *spatial)``.
"""

from __future__ import annotations

import logging
import statistics
import time
import weakref
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    """What a model costs at one input size. ``macs`` counts one fused multiply-add as 1 (fvcore)."""

    params: int
    macs: int
    latency_ms: float | None
    peak_memory_mb: float | None
    input_shape: tuple[int, ...]
    device: str
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    buffers: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


class _PeakMemory(TorchDispatchMode):
    """Tracks bytes of live tensor storages created inside the mode; the high-water mark is the peak.

    Works on any device (CPU has no allocator statistics); counts each storage once, frees it when
    its last tracked tensor is collected. Meant for inference (no autograd-saved tensors).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # storage ptr -> [tensor count, bytes]
        self._seen: set[int] = set()  # ids of tracked, still-alive tensors (WeakSet would call __eq__)

    def _release(self, ptr: int, tid: int) -> None:
        self._seen.discard(tid)
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or id(t) in self._seen:
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0:
                continue
            self._seen.add(id(t))
            entry = self._refs.setdefault(ptr, [0, storage.nbytes()])
            if entry[0] == 0:
                self.live += entry[1]
                self.peak = max(self.peak, self.live)
            entry[0] += 1
            weakref.finalize(t, self._release, ptr, id(t))
        return out


def _input(model: nn.Module, input_size: int | Sequence[int], batch_size: int, device: torch.device) -> torch.Tensor:
    cfg = getattr(model, "config", None)
    dims = getattr(cfg, "spatial_dims", 2)
    channels = getattr(cfg, "in_channels", None)
    if channels is None:
        first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
        channels = first.in_channels if first is not None else 3
    size = (input_size,) * dims if isinstance(input_size, int) else tuple(input_size)
    return torch.randn(batch_size, channels, *size, device=device)


def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore MACs of one forward (per batch as given), and the ops it could not count."""
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(model, x)
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    total = int(fca.total())
    return total, dict(Counter(fca.unsupported_ops()))


def measure_latency(model: nn.Module, x: torch.Tensor, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of one inference forward in ms, after warm-up runs."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure_peak_memory(model: nn.Module, x: torch.Tensor) -> float:
    """Peak bytes (as MiB) allocated by one inference forward beyond the weights and the input."""
    with torch.inference_mode():
        if x.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(x.device)
            base = torch.cuda.memory_allocated(x.device)
            model(x)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated(x.device) - base) / 2**20
        tracker = _PeakMemory()
        with tracker:
            model(x)
        return tracker.peak / 2**20


def profile(
    model: nn.Module,
    input_size: int | Sequence[int] = 224,
    *,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    latency: bool = True,
    memory: bool = True,
    repeats: int = 10,
    warmup: int = 2,
) -> Profile:
    """Profile ``model`` in eval mode on an input of ``(batch_size, c, *input_size)``.

    MACs are per batch as given (batch 1 by default). Unsupported ops are listed, never silently 0.
    The model's train/eval mode is restored afterwards.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model = model.to(dev).eval()
    try:
        x = _input(model, input_size, batch_size, dev)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        buffers = sum(b.numel() for b in model.buffers())
        macs, unsupported = count_macs(model, x)
        lat = measure_latency(model, x, repeats, warmup) if latency else None
        mem = measure_peak_memory(model, x) if memory else None
    finally:
        model.train(was_training)
    return Profile(params, macs, lat, mem, tuple(x.shape), str(dev), unsupported, buffers)
