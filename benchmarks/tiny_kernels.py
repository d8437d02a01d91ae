"""Tiny training convolutions: ATen's native kernels against oneDNN, one kernel at a time.

The figures behind ``blocks.base.native_conv_pays`` and ``fast_conv_transpose``: forward + backward
(input and weight gradients) of a 3x3 conv (stride 1, pad 1) and of BiO-Net's 3x3 stride-2
transposed up conv at PL-Net†'s search-fidelity shapes (batch 8), one thread, CPU time, median of
``--rounds`` rounds, the two kernels round-robin so the machine's load hits them alike.

    python benchmarks/tiny_kernels.py              # ~1 min on a 2-core CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

CONVS = [(2, 2, 32), (4, 2, 32), (6, 2, 32), (4, 4, 16), (12, 4, 16), (8, 8, 8), (16, 16, 4), (16, 16, 32)]
UPS = [(4, 4, 16), (8, 8, 8), (16, 16, 4), (32, 32, 2)]  # (cin, cout, input px): output is twice the size


def _time(fn, reps: int) -> float:
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps * 1e3


def pair(kind: str, cin: int, cout: int, px: int, batch: int):
    x = torch.randn(batch, cin, px, px, requires_grad=True)
    if kind == "conv":
        w = torch.randn(cout, cin, 3, 3, requires_grad=True)
        g = torch.randn(batch, cout, px, px)
        native = lambda: torch._C._nn.thnn_conv2d(x, w, (3, 3), None, 1, 1)  # noqa: E731
        onednn = lambda: F.conv2d(x, w, padding=1)  # noqa: E731
    else:
        w = torch.randn(cin, cout, 3, 3, requires_grad=True)
        g = torch.randn(batch, cout, 2 * px, 2 * px)
        native = lambda: torch._C._nn.slow_conv_transpose2d(x, w, (3, 3), None, 2, 1, 1)  # noqa: E731
        onednn = lambda: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)  # noqa: E731
    a, b = native(), onednn()
    assert torch.allclose(a, b, atol=1e-3), "the two kernels disagree"
    macs = batch * px * px * w.numel()
    return macs, (lambda: torch.autograd.grad(native(), (x, w), g)), (lambda: torch.autograd.grad(onednn(), (x, w), g))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=50, help="forward + backward calls per timed round")
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| kernel | cin -> cout | px (input) | MACs/call | native ms | oneDNN ms | native / oneDNN |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind, shapes in (("conv", CONVS), ("up (convT 3x3 s2)", UPS)):
        for cin, cout, px in shapes:
            macs, native, onednn = pair("conv" if kind == "conv" else "up", cin, cout, px, args.batch)
            native(), onednn()  # warm-up
            t: dict[str, list[float]] = {"native": [], "onednn": []}
            for _ in range(args.rounds):
                t["native"].append(_time(native, args.reps))
                t["onednn"].append(_time(onednn, args.reps))
            n, o = statistics.median(t["native"]), statistics.median(t["onednn"])
            row = f"| {kind} | {cin} -> {cout} | {px} | {macs / 1e6:.2f} M | {n:.2f} | {o:.2f} | {n / o:.2f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
