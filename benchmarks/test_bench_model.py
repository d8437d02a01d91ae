"""pytest-benchmark suite: forward and train step of the presets and the MONAI peer, plus the
speed switches and the data pipeline. Not collected by the default ``pytest`` run (testpaths=tests).

    pytest benchmarks/test_bench_model.py --benchmark-columns=median,rounds
    PLSEARCH_BENCH_SIZE=224 PLSEARCH_BENCH_BATCH=16 pytest benchmarks/ ...   # bigger (slow on CPU)

Every benchmark stores ``macs_per_image``, ``achieved_flops`` and ``frac_peak`` (against the matmul
peak measured once per session) in ``extra_info`` (``--benchmark-json`` writes them out).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from plsearch.nn.speed import matmul_peak_flops  # noqa: E402

SIZE = int(os.environ.get("PLSEARCH_BENCH_SIZE", "96"))
BATCH = int(os.environ.get("PLSEARCH_BENCH_BATCH", "1"))
ROUNDS = int(os.environ.get("PLSEARCH_BENCH_ROUNDS", "3"))
DEVICE = torch.device(os.environ.get("PLSEARCH_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu"))
HAS_MONAI = importlib.util.find_spec("monai") is not None
MODELS = list(benchlib.PRESETS) + [pytest.param("basicunet", marks=pytest.mark.skipif(
    not HAS_MONAI, reason="needs monai (pip install monai, extra 'bench')"))]


@pytest.fixture(scope="session")
def peak() -> float:
    return matmul_peak_flops(DEVICE)


def _run(benchmark, peak: float, spec: str, variant: str, mode: str) -> None:
    try:
        case = benchlib.make_case(spec, variant, mode, BATCH, SIZE, DEVICE)
    except benchlib.NotApplicable as e:
        pytest.skip(str(e))

    def step() -> None:
        case.step()
        benchlib.sync(DEVICE)

    benchmark.group = f"{mode} {SIZE}px batch {BATCH}"
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1)
    macs = benchlib.macs_per_image(benchlib.build_model(spec), SIZE)
    flop = (6 if mode == "train" else 2) * macs * BATCH
    t = benchmark.stats.stats.median
    benchmark.extra_info.update(macs_per_image=macs, achieved_flops=flop / t, frac_peak=flop / t / peak,
                                peak_flops=peak, threads=torch.get_num_threads(), load_avg=os.getloadavg())


@pytest.mark.parametrize("spec", MODELS)
def test_forward(benchmark, peak, spec):
    _run(benchmark, peak, spec, "eager", "forward")


@pytest.mark.parametrize("spec", MODELS)
def test_train_step(benchmark, peak, spec):
    _run(benchmark, peak, spec, "eager", "train")


@pytest.mark.parametrize("variant", ["cl", "fused", "fused+cl"])
def test_forward_switches(benchmark, peak, variant):
    _run(benchmark, peak, "plnet", variant, "forward")


@pytest.mark.parametrize("variant", ["cl", "ckpt"])
def test_train_switches(benchmark, peak, variant):
    _run(benchmark, peak, "plnet", variant, "train")


def test_augment_batch(benchmark):
    """Batched augmentation on the device: compare with a train step to see it is off the critical path."""
    from plsearch.data.augment import augment_batch

    g = torch.Generator().manual_seed(0)
    x = torch.rand(max(BATCH, 4), 3, SIZE, SIZE, device=DEVICE)
    y = (torch.rand(max(BATCH, 4), SIZE, SIZE, device=DEVICE) > 0.5).long()
    benchmark.group = f"data {SIZE}px"

    def step() -> None:
        augment_batch(x, y, generator=g, rotation_deg=25.0, shift=0.15, flips=True)
        benchlib.sync(DEVICE)

    benchmark.pedantic(step, rounds=max(ROUNDS, 5), warmup_rounds=1)


def test_matmul_peak(benchmark):
    n = 8192 if DEVICE.type == "cuda" else 2048
    benchmark.group = "peak"
    flops = benchmark.pedantic(lambda: matmul_peak_flops(DEVICE, n=n, repeats=1), rounds=3)
    benchmark.extra_info["flops"] = flops
