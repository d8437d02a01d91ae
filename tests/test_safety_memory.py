"""plsearch.graph.memory: the activation estimate from the wiring against the measured peak of real forwards,
and the refusal of sizes that cannot fit (with the figure and a size that fits)."""

from __future__ import annotations

import pytest
import torch

from plsearch.config.presets import preset_config
from plsearch.graph.memory import MemoryLimitError, activation_bytes, check_fits, largest_side
from plsearch.nn.model import PLNet
from plsearch.nn.profile import _PeakMemory

# (preset, overrides, size): every plan, block kind, fusion, ipl mode and 3D, at sizes that run in milliseconds
CASES = [
    ("bionet", dict(base_width=4), 32),
    pytest.param("plnet", dict(base_width=4), 32, marks=pytest.mark.slow),
    pytest.param("plnet", dict(base_width=4, block="residual", depth=4), 32, marks=pytest.mark.slow),
    pytest.param("plnet-small", dict(base_width=4), 48, marks=pytest.mark.slow),
    pytest.param("unet", dict(base_width=4), 64, marks=pytest.mark.slow),
    pytest.param("plnet", dict(base_width=4, block="convbnrelu", steps=3, fusion="last"), 40, marks=pytest.mark.slow),
    pytest.param("plnet", dict(base_width=4, ipl="stacked", bsc=False), 48, marks=pytest.mark.slow),
    pytest.param("plnet", dict(base_width=2, spatial_dims=3, depth=3), 20, marks=pytest.mark.slow),
]
EVAL_FACTOR = (0.95, 1.15)  # measured: 1.00-1.08
TRAIN_FACTOR = (0.95, 1.35)  # measured: 1.04-1.17 (the estimate errs on the safe side)


def _measured(cfg, size: int, batch: int, training: bool) -> int:
    torch.manual_seed(0)
    model = PLNet.from_config(cfg)
    x = torch.randn(batch, cfg.in_channels, *([size] * cfg.spatial_dims))
    tracker = _PeakMemory()
    if training:
        model.train()
        with tracker:
            sum(o.mean() for o in model(x)).backward()
    else:
        model.eval()
        with torch.inference_mode(), tracker:
            model(x)
    return tracker.peak + x.numel() * x.element_size()  # the estimate counts the input too


@pytest.mark.parametrize("name, kw, size", CASES)
def test_estimate_matches_the_measured_peak(name, kw, size):
    cfg = preset_config(name, **kw)
    for training, (lo, hi) in ((False, EVAL_FACTOR), (True, TRAIN_FACTOR)):
        est = activation_bytes(cfg, size, batch=2, training=training)
        if training:  # the measured peak also holds the weights' gradients
            est += 4 * sum(p.numel() for p in PLNet.from_config(cfg).parameters())
        got = _measured(cfg, size, 2, training)
        assert lo <= est / got <= hi, (training, est, got)


def test_estimate_scales_with_batch_and_area_and_counts_the_padding():
    cfg = preset_config("unet", base_width=4)
    one = activation_bytes(cfg, 64)
    assert activation_bytes(cfg, 64, batch=3) == 3 * one
    assert 3.8 < activation_bytes(cfg, 128) / one < 4.2
    assert activation_bytes(cfg, 61) > activation_bytes(cfg, 64) * 0.99  # padded up to 64 (+ the unpadded copy)
    assert activation_bytes(cfg.to_dict(), 64) == one  # a dict works too (what a checkpoint holds)
    assert activation_bytes(cfg, 64, dtype_bytes=2) == one // 2


def test_a_size_that_cannot_fit_is_refused_with_the_figure_and_a_size_that_fits():
    cfg = preset_config("plnet")
    with pytest.raises(MemoryLimitError) as e:
        check_fits(cfg, 100_000, device="cpu", available=8 * 2**30, flag="--image-size")
    msg = str(e.value)
    assert "TiB" in msg and "8.0 GiB" in msg and "--image-size" in msg and "\n" not in msg
    side = int(msg.split("--image-size ")[1].split()[0])
    assert side > 0 and side % cfg.total_stride() == 0
    assert activation_bytes(cfg, side) <= 8 * 2**30 < activation_bytes(cfg, side + cfg.total_stride())
    assert check_fits(cfg, side, available=8 * 2**30) <= 8 * 2**30


def test_largest_side_is_zero_when_nothing_fits_and_check_fits_passes_small_inputs():
    cfg = preset_config("plnet-small")
    assert largest_side(cfg, 10) == 0
    assert check_fits(cfg, 64, device="cpu") > 0  # the real machine has room for 64 px
