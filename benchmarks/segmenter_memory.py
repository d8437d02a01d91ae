"""Peak memory of ``plsearch.Segmenter`` on large inputs, against the bound the code states.

    nice -n 10 python benchmarks/segmenter_memory.py                 # 2048x2048 RGB image, 256^3 volume
    nice -n 10 python benchmarks/segmenter_memory.py --case 3d --size 128 --overlap 0.5

Each case runs in a fresh process (one thread) that builds the network, makes the input, then resets
the kernel's peak-RSS mark (``/proc/self/clear_refs``) and predicts; the figure is the process's
``VmHWM`` after the prediction minus its ``VmRSS`` before it (tracemalloc does not see torch's
allocations). The bound is ``plsearch.infer.segmenter.peak_bytes_estimate`` (tile activations by
``plsearch.graph.memory`` + per-voxel buffers) plus the weights. Cases:

- ``2d``: PL-Net-dagger (``plnet-small``, default width: base 32, Ocs 0.5, 3.75 M parameters), RGB uint8,
  in ``sliding`` mode (tiles from the default 512 MiB budget) and in ``resize`` mode (the default for 2D
  networks: one forward at the training size);
- ``3d``: a 3D U-Net (``unet`` preset, base width 8, 3 classes, 1.41 M parameters) on float32 intensities,
  in ``sliding`` mode.

``--overlap`` (default 0) changes the number of tiles, so the time, not the memory: one forward holds
``batch_size`` tiles whatever the overlap, and the buffers are per input voxel.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MIB = 1 << 20


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _one(case: str, size: int, mode: str, overlap: float) -> dict:
    import numpy as np
    import torch

    from plsearch.config.presets import preset_config
    from plsearch.infer.segmenter import Preprocessing, Segmenter, peak_bytes_estimate
    from plsearch.nn.model import PLNet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if case == "2d":
        cfg = preset_config("plnet-small", in_channels=3)
        pre = Preprocessing(2, 3, 1, image_size=224)
        x = rng.integers(0, 256, size=(3, size, size), dtype=np.uint8)
    else:
        cfg = preset_config("unet", in_channels=1, spatial_dims=3, num_classes=3, base_width=8)
        pre = Preprocessing(3, 1, 3, image_size=64, fit="pad_crop")
        x = rng.normal(300.0, 80.0, size=(size,) * 3).astype(np.float32)
    model = PLNet.from_config(cfg).eval()
    seg = Segmenter(model, mode=mode, overlap=overlap, preprocessing=pre)
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    shape = x.shape[-pre.spatial_dims :]
    channels = pre.in_channels
    bound = weights + peak_bytes_estimate(
        cfg, shape, tile=seg.tile, batch=seg.batch_size, num_classes=pre.num_classes, channels=channels
    )
    import gc

    gc.collect()
    before = _status()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark to the current RSS
    t0, c0 = time.perf_counter(), time.process_time()
    labels = seg.predict(x)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status()["VmHWM"]
    assert labels.shape == tuple(shape), labels.shape
    return {
        "case": case,
        "input": "x".join(map(str, x.shape)) + f" {x.dtype}",
        "mode": seg.mode,
        "tile": seg.tile if seg.mode == "sliding" else pre.image_size,
        "batch": seg.batch_size,
        "overlap": overlap,
        "params": sum(p.numel() for p in model.parameters()),
        "input_mib": round(x.nbytes / MIB, 1),
        "measured_mib": round((peak - before) / MIB, 1),
        "bound_mib": round(bound / MIB, 1) if seg.mode == "sliding" else None,
        "baseline_rss_mib": round(before / MIB, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["2d", "3d", "all"], default="all")
    ap.add_argument("--size", type=int, help="image side / volume side [2048 for 2d, 256 for 3d]")
    ap.add_argument("--mode", choices=["sliding", "resize", "both"], default="both", help="2d only; 3d: sliding")
    ap.add_argument("--overlap", type=float, default=0.0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the rows as JSON lines to this file")
    args = ap.parse_args()
    if args.child:  # one measurement in this fresh process
        print(json.dumps(_one(args.case, args.size, args.mode, args.overlap)))
        return
    runs = []
    for case in (["2d", "3d"] if args.case == "all" else [args.case]):
        size = args.size or (2048 if case == "2d" else 256)
        modes = ["sliding"] if case == "3d" else (["sliding", "resize"] if args.mode == "both" else [args.mode])
        runs += [(case, size, mode) for mode in modes]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows = []
    for case, size, mode in runs:
        cmd = [sys.executable, __file__, "--child", "--case", case, "--size", str(size), "--mode", mode]
        done = subprocess.run(
            [*cmd, "--overlap", str(args.overlap)], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.exit(f"{case} {mode} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| input | network | mode (tile x batch) | measured peak over baseline | stated bound | CPU s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        net = "PL-Net-dagger 2D" if r["case"] == "2d" else "3D U-Net, width 8"
        tile = f"{r['mode']} ({r['tile']} x {r['batch']})"
        bound = f"{r['bound_mib']:.0f} MiB" if r["bound_mib"] is not None else "-"
        print(f"| {r['input']} | {net} | {tile} | {r['measured_mib']:.0f} MiB | {bound} | {r['cpu_s']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
