"""Activation memory of a forward, estimated from the wiring, and a check that refuses sizes that cannot fit.

The wiring knows every tensor a forward makes (``Op.output`` at resolution ``Op.res``, width
``Layer.cout``), so the peak of live activations follows without building the model or touching
torch: walk the ops in order, add each output (and the transient tensors inside a block: the
concatenated input, the conv result before the norm), and free each tensor after its last use, as
``PLNet`` does. In training every op's saved tensors stay until the backward, so they add up.

Used before anything is allocated: ``predict`` and ``profile`` refuse an ``--image-size`` /
``--input-size`` whose forward cannot fit on the device, with the figure and the largest size that
fits; the tiled predictor picks its tile size with ``largest_side``.

Accuracy: eval equals the measured peak (ratio 1.00-1.08), training over-estimates by 4-17 %; held
within 1.0-1.3x of the measured peak of live tensor storages (CPU, fp32) by
``tests/test_safety_memory.py`` over the presets and block kinds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MemoryLimitError", "activation_bytes", "available_bytes", "check_fits", "fmt_bytes", "largest_side"]

# Transient tensors inside one application, in units of its output (the output itself excluded):
# plconv/convbnrelu: the conv result before the norm; residual: conv1, its norm, conv2, the sum.
_BLOCK_TRANSIENT = {"plconv": 1, "convbnrelu": 1, "residual": 4}
_DEFAULT_TRANSIENT = 3  # a registered block we know nothing about
# Up units: convt3's conv result before its norm; convt2_half has no norm. A plug-in: one, like a conv + norm.
_UP_TRANSIENT = {"convt3": 1, "convt2_half": 0}
_DEFAULT_UP_TRANSIENT = 1


class MemoryLimitError(ValueError):
    """A forward at the requested size cannot fit in the device's memory; the message gives the figure and a fix."""


def fmt_bytes(n: float) -> str:
    for unit, div in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def _config(model_cfg: Any) -> Any:
    from plsearch.config.schema import ModelConfig

    if isinstance(model_cfg, ModelConfig):
        return model_cfg
    if isinstance(model_cfg, Mapping):
        return ModelConfig.from_dict(model_cfg)
    cfg = getattr(model_cfg, "config", None)  # a PLNet or a Wiring
    if isinstance(cfg, ModelConfig):
        return cfg
    raise TypeError(f"model_cfg must be a ModelConfig, a dict of one, or a model with .config; got {type(model_cfg)}")


def _elements(cfg: Any, size: tuple[int, ...], training: bool) -> tuple[int, int]:
    """(peak live elements of one sample in eval, or retained + peak transient in training; padded input)."""
    from plsearch.graph.wiring import build_wiring, padded_size

    w = build_wiring(cfg)
    padded = padded_size(cfg, size)
    ops = w.needed_ops(training)
    outs = set(w.outputs(training))
    last: dict[str, int] = {}
    for i, op in enumerate(ops):
        for name in op.inputs:
            last[name] = i
    width: dict[str, int] = {"input": cfg.in_channels}
    res: dict[str, int] = {"input": 0}

    def vox(r: int) -> int:
        return math.prod(n // 2**r for n in padded)

    transient_k = _BLOCK_TRANSIENT.get(cfg.block, _DEFAULT_TRANSIENT)
    in_elems = cfg.in_channels * math.prod(padded)
    extra_input = in_elems if tuple(padded) != tuple(size) else 0  # the caller's unpadded copy
    live = in_elems + extra_input
    peak = live
    retained = 0  # training: tensors autograd keeps for the backward
    made = 0  # training: every op's output is saved by the op that reads it
    for i, op in enumerate(ops):
        cin = sum(width[n] for n in op.inputs)
        if op.kind == "pool":
            cout = cin
        else:
            cout = w.layer(op.layer).cout
        width[op.output], res[op.output] = cout, op.res
        v_out = vox(op.res)
        v_in = vox(res[op.inputs[0]])
        concat = cin * v_in if len(op.inputs) > 1 and "self" not in op.edges else 0
        if op.kind == "block":
            transient = transient_k * cout * v_out
        elif op.kind == "up":
            transient = _UP_TRANSIENT.get(cfg.up, _DEFAULT_UP_TRANSIENT) * cout * v_out
        else:
            transient = 0
        out = cout * v_out
        peak = max(peak, live + concat + transient + out)
        live += out
        made += out
        if training:
            # conv input (the concat, when one was made), relu/norm intermediates; a max pool keeps int64 indices
            retained += concat + (transient if op.kind != "pool" else 2 * out)
        for name in set(op.inputs):
            if last.get(name) == i and name not in outs and name != "input":
                live -= width[name] * vox(res[name])
    fused = cfg.num_classes * math.prod(padded) * (2 if len(w.outputs(training)) > 1 else 1)
    peak = max(peak, live + fused)
    if training:
        # every output stays (saved) until the backward, whose peak adds about two of the largest tensors
        biggest = max(width[o.output] * vox(o.res) for o in ops)
        return in_elems + extra_input + made + retained + fused + 2 * biggest, in_elems
    return peak, in_elems


def activation_bytes(
    model_cfg: Any, input_size: int | Sequence[int], batch: int = 1, training: bool = False, dtype_bytes: int = 4
) -> int:
    """Estimated peak bytes of activations of one forward (eval) or one train step's forward+backward.

    Args:
        model_cfg: a ``ModelConfig`` (or its dict, or a model with ``.config``).
        input_size: spatial size, one int or one per dim (padded up to the total stride, as the model does).
        batch: samples per forward; activations scale linearly with it.
        training: autograd keeps every op's saved tensors until the backward.
        dtype_bytes: 4 for fp32, 2 for bf16/fp16 autocast.

    Weights, optimiser state and the framework's own workspace are not included.
    """
    cfg = _config(model_cfg)
    size = (input_size,) * cfg.spatial_dims if isinstance(input_size, int) else tuple(int(n) for n in input_size)
    if any(n < 1 for n in size) or batch < 1:
        raise ValueError(f"input_size {size} and batch {batch} must be positive")
    elems, _ = _elements(cfg, size, training)
    return int(elems) * int(batch) * int(dtype_bytes)


def _cgroup_limit() -> int | None:
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            text = Path(limit).read_text().strip()
            if text == "max" or int(text) > 2**60:
                continue
            return max(0, int(text) - int(Path(usage).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_bytes(device: Any = "cpu") -> int | None:
    """Memory a forward may use now: free CUDA memory, or the host's available RAM (and cgroup limit). None: unknown."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        try:
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except (RuntimeError, AssertionError, ValueError):
            return None
    if kind == "mps":
        return None
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    cg = _cgroup_limit()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def largest_side(
    model_cfg: Any,
    budget_bytes: int,
    *,
    batch: int = 1,
    training: bool = False,
    dtype_bytes: int = 4,
    low: int | None = None,
    high: int = 1 << 17,
) -> int:
    """The largest square (cubic) side, a multiple of the total stride, whose activations fit ``budget_bytes``;
    0 when not even one stride fits."""
    cfg = _config(model_cfg)
    s = cfg.total_stride()
    lo, hi = 0, high // s  # in units of the stride
    if low:
        lo = max(0, low // s - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if activation_bytes(cfg, mid * s, batch, training, dtype_bytes) <= budget_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo * s


def check_fits(
    model_cfg: Any,
    input_size: int | Sequence[int],
    *,
    batch: int = 1,
    training: bool = False,
    device: Any = "cpu",
    dtype_bytes: int = 4,
    flag: str = "--image-size",
    extra_bytes: int = 0,
    available: int | None = None,
) -> int:
    """Raise ``MemoryLimitError`` if one forward at ``input_size`` cannot fit on ``device``; returns the estimate.

    ``extra_bytes``: what else the caller holds at the same time (weights, decoded images).
    ``available`` overrides the measured free memory (tests). Unknown free memory: nothing is refused.
    """
    need = activation_bytes(model_cfg, input_size, batch, training, dtype_bytes) + int(extra_bytes)
    have = available_bytes(device) if available is None else int(available)
    if have is None or need <= have:
        return need
    cfg = _config(model_cfg)
    side = largest_side(cfg, max(0, have - int(extra_bytes)), batch=batch, training=training, dtype_bytes=dtype_bytes)
    shown = "x".join(map(str, input_size)) if not isinstance(input_size, int) else f"{input_size}x{input_size}"
    where = "free on " + str(device) if str(device).startswith("cuda") else "of RAM available"
    fix = (f"use {flag} {side} or less" if side else "use a smaller model") + (
        f", or a batch size below {batch}" if batch > 1 else ""
    )
    raise MemoryLimitError(
        f"a forward at {shown} (batch {batch}) needs about {fmt_bytes(need)} of activations, "
        f"{fmt_bytes(have)} {where}; {fix}"
    )
