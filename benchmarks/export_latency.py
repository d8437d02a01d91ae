"""CPU latency of one network eager, BatchNorm-folded (fused) and in onnxruntime, as ratios (one run).

    python benchmarks/export_latency.py            # PL-Net-dagger 2D at 96 px and a 3D PL-Net-dagger at 32^3

One thread everywhere (torch and onnxruntime), CPU time per forward (``time.process_time``, median of
``--repeats`` after one warm-up), so a busy shared machine moves the ratios less than wall time would.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _cpu_ms(fn, x, repeats: int) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn(x)
        times.append(time.process_time() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    import onnxruntime as ort

    from plsearch.config.presets import preset_config
    from plsearch.infer.export import export_model
    from plsearch.nn.model import PLNet

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = [("PL-Net-dagger 2D, 96x96", preset_config("plnet-small"), (1, 3, 96, 96)),
             ("PL-Net-dagger 3D (width 8, depth 4), 32^3",
              preset_config("plnet-small", base_width=8, depth=4, spatial_dims=3, in_channels=1, num_classes=3),
              (1, 1, 32, 32, 32))]
    print("| network | eager | fused | onnxruntime |")
    print("|---|---:|---:|---:|")
    for name, cfg, shape in cases:
        torch.manual_seed(0)
        model = PLNet.from_config(cfg).eval()
        fused = model.fuse_for_inference()
        x = torch.rand(shape)
        with tempfile.TemporaryDirectory() as tmp:
            path = export_model(model, Path(tmp) / "m.onnx", fmt="onnx", input_size=shape[2:])
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            with torch.no_grad():
                eager = _cpu_ms(model, x, args.repeats)
                fast = _cpu_ms(fused, x, args.repeats)
            onnx = _cpu_ms(lambda a, s=sess: s.run(None, {"input": a.numpy()}), x, args.repeats)
        print(f"| {name} | {eager:.0f} ms (1.00) | {fast:.0f} ms ({eager / fast:.2f}x) | "
              f"{onnx:.0f} ms ({eager / onnx:.2f}x) |", flush=True)


if __name__ == "__main__":
    main()
