"""Shared pieces of the speed benchmarks (not part of the library): models, steps, timing, records.

Conventions (also written into every result file):
- MACs: fvcore's count (``plsearch.nn.profile.count_macs``) of one eval-mode forward at batch 1,
  times the batch: the nominal MACs of the graph, also for train steps and fused models, which
  execute a few % fewer (self-concatenation shortcut), so their FLOP/s are "effective".
- Forward (eval): FLOP = 2 x MACs. Train step (forward, Dice loss over every stage's logits,
  backward, Adam step): FLOP = 3 x 2 x MACs (backward ~ 2 x forward; loss and Adam not counted).
- Achieved FLOP/s = FLOP / median step time; ``frac_peak`` = that / the machine's matmul peak,
  the best FLOP/s of the fp32 2048^3 sgemms (CPU; bf16 8192^3 on CUDA) timed round-robin with
  the steps during the whole run. ``frac_peak_alongside`` divides by the median of the matmuls
  timed with that row instead (same load as the row; on a shared machine it moves with the load).
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
import types
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

import plsearch
from plsearch.config.schema import parse_scalar
from plsearch.nn.profile import count_macs
from plsearch.nn.speed import autocast, compile_model, fuse_for_inference, to_channels_last
from plsearch.train.losses import deep_supervision_loss

PRESETS = ("plnet", "plnet-small", "bionet", "unet")
PEERS = ("basicunet",)
# A variant is "eager" or "+"-joined switches: cl (channels_last model and input), amp (bf16
# autocast; CUDA only, a no-op on CPU), compile (torch.compile), fused (BN folded; forward only),
# ckpt (activation checkpointing; train only), fadam (Adam(fused=True): one kernel per step
# instead of a Python loop over parameters), cat (the code before issue 6: self-concatenations
# [x, x] concatenated and convolved at full width in training). E.g. "cl+amp", "fused+cl".
FLAGS = ("cl", "amp", "compile", "fused", "ckpt", "fadam", "cat")
CONVENTION = ("train FLOP = 3 x 2 x forward MACs (fvcore, eval-mode graph, batch 1 x batch); forward FLOP = 2 x MACs; "
              "achieved = FLOP / median step time; frac_peak = achieved / best matmul FLOP/s of the run "
              "(matmuls timed round-robin with the steps)")


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"plnet:steps=3,ocs=0.5"`` -> ``("plnet", {"steps": 3, "ocs": 0.5})``."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        overrides[key] = parse_scalar(value)
    return name, overrides


def build_model(spec: str, in_channels: int = 3, num_classes: int = 1) -> nn.Module:
    """A preset (with overrides) or a peer: ``basicunet`` is MONAI's BasicUNet (features 32..256)."""
    name, overrides = parse_spec(spec)
    torch.manual_seed(0)
    if name == "basicunet":
        from monai.networks.nets import BasicUNet

        return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **overrides)
    return plsearch.create_model(name, in_channels=in_channels, num_classes=num_classes, **overrides)


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def macs_per_image(model: nn.Module, size: int) -> int:
    """fvcore MACs of one eval-mode forward of one image: the nominal count of the model's graph
    (``plsearch.nn.profile``'s). The train-mode forward of the presets runs the same ops, except that
    PL-Net's first-pass self-concatenations then execute as half-width convs (2.9 % fewer MACs)."""
    probe = copy.deepcopy(model).eval()
    x = torch.randn(1, _in_channels(model), size, size)
    return count_macs(probe, x)[0]


def _in_channels(model: nn.Module) -> int:
    cfg = getattr(model, "config", None)
    if cfg is not None:
        return cfg.in_channels
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def machine(device: torch.device) -> dict:
    """What the figures ran on, including the load at the time (the machine may be shared)."""
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_avg": [round(v, 2) for v in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


@dataclass
class Case:
    """One model in one variant, ready to time: ``step()`` runs one forward or one train step."""

    spec: str
    variant: str
    mode: str  # "forward" | "train"
    step: Callable[[], None]
    model: nn.Module
    error: str = ""  # set when a step raised (the case is then left out of the timing)


class NotApplicable(ValueError):
    """This variant does not apply to this model or mode (the sweep skips it)."""


def parse_variant(variant: str) -> set[str]:
    flags = set() if variant == "eager" else set(variant.split("+"))
    unknown = flags - set(FLAGS)
    if unknown:
        raise ValueError(f"variant {variant!r}: unknown switch {sorted(unknown)}; use eager or {'+'.join(FLAGS)}")
    return flags


def make_case(spec: str, variant: str, mode: str, batch: int, size: int, device: torch.device) -> Case:
    """Build ``spec`` in ``variant`` (see ``FLAGS``) with a random batch on ``device``."""
    flags = parse_variant(variant)
    model = build_model(spec).to(device)
    cin = _in_channels(model)
    x = torch.rand(batch, cin, size, size, device=device)
    y = (torch.rand(batch, size, size, device=device) > 0.7).long()
    if "cat" in flags:
        from plsearch.nn.blocks import Block

        if not hasattr(model, "wiring"):
            raise NotApplicable(f"cat: {spec} is not a PLNet")
        for layer in model.modules():
            if isinstance(layer, Block):  # back to the definition: the block applied to cat([x, x])
                layer.forward_self_concat = types.MethodType(Block.forward_self_concat, layer)
    if "ckpt" in flags:
        if mode != "train" or not hasattr(model, "set_checkpointing"):
            raise NotApplicable(f"ckpt: only PLNet train steps checkpoint ({spec}, {mode})")
        model.set_checkpointing(True)
    if "cl" in flags:
        model, x = to_channels_last(model), to_channels_last(x)
    ctx = autocast(device, enabled="amp" in flags)
    if "fused" in flags and not hasattr(model, "fuse_for_inference"):
        raise NotApplicable(f"fused: {spec} has no fuse_for_inference()")
    if mode == "forward":
        model.eval()
        net = fuse_for_inference(model) if "fused" in flags else model
        net = compile_model(net) if "compile" in flags else net

        def step() -> None:
            with torch.inference_mode(), ctx:
                net(x)

        return Case(spec, variant, mode, step, net)
    if "fused" in flags:
        raise NotApplicable("fused: folded norms are for inference (mode forward) only")
    model.train()
    net = compile_model(model) if "compile" in flags else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True if "fadam" in flags else None)

    def step() -> None:
        with ctx:
            out = net(x)
        loss = deep_supervision_loss(out, y)  # Dice over every stage's logits, as fit() trains
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Case(spec, variant, mode, step, model)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _matmul_case(device: torch.device, n: int | None = None) -> Case:
    """The yardstick as one more case: an fp32 (CPU) / bf16 (CUDA) n x n matmul, timed like the rest."""
    n = n or (8192 if device.type == "cuda" else 2048)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    return Case(f"matmul{n}", "peak", "matmul", lambda: torch.mm(a, b, out=out), nn.Identity())


def time_interleaved(cases: list[Case], device: torch.device, repeats: int, warmup: int = 1,
                     peak_repeats: int = 2, clock: str = "wall") -> tuple[dict[str, list[float]], list[float]]:
    """Seconds per step of each case, timed round-robin (A B C A B C ...) so that a change in the
    machine's load hits every variant alike; ``warmup`` untimed rounds first (compiles, caches).

    Each round also times ``peak_repeats`` matmuls: the second return value is their FLOP/s, the
    machine's peak under the same conditions as the cases. ``clock="cpu"`` times this process's
    CPU seconds instead of wall seconds: with one thread on a shared machine that is the time the
    step would take alone (time spent descheduled is not counted).
    """
    now = time.process_time if clock == "cpu" else time.perf_counter
    mm = _matmul_case(device)
    n = int(mm.spec.removeprefix("matmul"))
    times: dict[str, list[float]] = {c.variant: [] for c in cases}
    peaks: list[float] = []
    live = list(cases)
    mm.step()
    for i in range(warmup + repeats):
        for c in live + [mm] * peak_repeats:
            sync(device)
            t0 = now()
            try:
                c.step()
            except Exception as e:  # e.g. a torch.compile failure: report it, time the others
                c.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
                live.remove(c)
                continue
            sync(device)
            if i < warmup:
                continue
            dt = now() - t0
            if c is mm:
                peaks.append(2 * n**3 / dt)
            else:
                times[c.variant].append(dt)
    return times, peaks


def train_peak_memory_mb(case: Case, device: torch.device) -> float:
    """Peak bytes allocated during one train step, as MiB (CUDA allocator stats; on CPU the live
    tensor storages tracked by ``plsearch.nn.profile``'s dispatch mode, autograd's saved tensors included)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        case.step()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from plsearch.nn.profile import _PeakMemory

    tracker = _PeakMemory()
    with tracker:
        case.step()
    return tracker.peak / 2**20


def row(case: Case, times: list[float], *, size: int, batch: int, macs_img: int, peak_flops: float,
        params: int) -> dict:
    """One result record (units in the names); ``peak_flops``: the matmul FLOP/s timed alongside
    (``set_peak`` later sets the run's best as the reference)."""
    if case.error:
        return {"model": case.spec, "variant": case.variant, "mode": case.mode, "size": size, "batch": batch,
                "params": params, "macs_per_image": macs_img, "error": case.error}
    t = statistics.median(times)
    flop = (6 if case.mode == "train" else 2) * macs_img * batch
    return {"model": case.spec, "variant": case.variant, "mode": case.mode, "size": size, "batch": batch,
            "params": params, "macs_per_image": macs_img, "time_ms": 1e3 * t, "time_ms_min": 1e3 * min(times),
            "images_per_s": batch / t, "achieved_flops": flop / t, "frac_peak": flop / t / peak_flops,
            "peak_flops": peak_flops, "peak_alongside_flops": peak_flops, "frac_peak_alongside": flop / t / peak_flops,
            "repeats": len(times)}


def set_peak(rows: list[dict], peak_flops: float) -> None:
    """Judge every row against one peak (the best matmul of the run)."""
    for r in rows:
        if not r.get("error"):
            r["peak_flops"], r["frac_peak"] = peak_flops, r["achieved_flops"] / peak_flops


def markdown_table(rows: list[dict], meta: dict) -> str:
    """The rows as a Markdown table, with the machine, its peak and the FLOP convention on top."""
    m = meta["machine"]
    lines = [f"Device: {m['device']} ({m.get('gpu') or m['cpu']}), {m['threads']} threads, torch {m['torch']}; "
             f"load average before/after: {meta['load_before']} / {meta['load_after']}; clock: {meta.get('clock', 'wall')}",
             f"Matmul peak (best of the run): {meta['peak_best'] / 1e9:.1f} GFLOP/s; column 'mm alongside': the "
             f"median matmul GFLOP/s timed with that row. Convention: {CONVENTION}.", "",
             "| model | variant | mode | size | batch | params (M) | GMACs/img | ms/step | img/s | GFLOP/s "
             "| mm alongside | of peak |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['variant']} | {r['mode']} | {r['size']} | {r['batch']} | "
                         f"{r['params'] / 1e6:.2f} | {r['macs_per_image'] / 1e9:.2f} | failed: {r['error'][:80]} "
                         "| | | | |")
            continue
        mem = f" ({r['peak_memory_mb']:.0f} MiB)" if r.get("peak_memory_mb") is not None else ""
        lines.append(f"| {r['model']} | {r['variant']}{mem} | {r['mode']} | {r['size']} | {r['batch']} | "
                     f"{r['params'] / 1e6:.2f} | {r['macs_per_image'] / 1e9:.2f} | {r['time_ms']:.1f} | "
                     f"{r['images_per_s']:.2f} | {r['achieved_flops'] / 1e9:.1f} | {r['peak_alongside_flops'] / 1e9:.0f} | "
                     f"{100 * r['frac_peak']:.0f} % |")
    return "\n".join(lines) + "\n"
