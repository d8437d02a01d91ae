"""Per-class Dice and HD95 in mm, checked by brute force and (when installed) against MONAI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist

from plsearch.train.metrics import hausdorff95, volume_metrics


def _blobs(seed: int, shape=(18, 20, 16)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.normal(size=shape), 2.0) > 0.05
    b = ndimage.gaussian_filter(rng.normal(size=shape), 2.0) > 0.05
    return a, a ^ (b & ndimage.binary_dilation(a, iterations=2))  # a related but different mask


def _brute_hd95(p: np.ndarray, t: np.ndarray, spacing) -> float:
    """Surface points by explicit face-neighbour test, all pairwise distances."""

    def surface(m):
        padded = np.pad(m, 1)
        inner = padded[1:-1, 1:-1, 1:-1].copy()
        for ax in range(3):
            for step in (-1, 1):
                inner &= np.roll(padded, step, axis=ax)[1:-1, 1:-1, 1:-1]
        return np.argwhere(m & ~inner) * np.asarray(spacing)

    d = cdist(surface(p), surface(t))
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


@pytest.mark.parametrize("seed, spacing", [(0, (1.0, 1.0, 1.0)), (1, (0.7, 1.3, 2.5)), (2, (3.0, 0.5, 1.0))])
def test_hd95_equals_brute_force(seed, spacing):
    p, t = _blobs(seed)
    assert p.any() and t.any() and (p != t).any()
    assert hausdorff95(p, t, spacing) == pytest.approx(_brute_hd95(p, t, spacing), rel=1e-9)


@pytest.mark.slow  # importing MONAI takes ~15 s; the brute-force test above always runs
@pytest.mark.parametrize("seed, spacing", [(3, (1.0, 1.0, 1.0)), (4, (0.8, 1.5, 3.0))])
def test_hd95_equals_monai(seed, spacing):
    metrics = pytest.importorskip("monai.metrics")
    p, t = _blobs(seed)
    pt, tt = (torch.from_numpy(m)[None, None].float() for m in (p, t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's own deprecation warnings
        ref = metrics.compute_hausdorff_distance(pt, tt, include_background=True, percentile=95, spacing=spacing)
    assert hausdorff95(p, t, spacing) == pytest.approx(float(ref), rel=1e-6)


def test_hd95_empty_masks_and_known_shift():
    z = np.zeros((8, 8, 8), bool)
    a = z.copy()
    a[2:5, 2:5, 2:5] = True
    assert hausdorff95(z, z) == 0.0
    assert math.isnan(hausdorff95(a, z)) and math.isnan(hausdorff95(z, a))
    b = np.roll(a, 2, axis=2)  # the same cube 2 voxels further along z
    assert hausdorff95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hausdorff95(a, b, (1.0, 1.0, 3.0)) == pytest.approx(6.0)  # spacing from the header scales it


def test_volume_metrics_per_class_names_and_means():
    target = np.zeros((10, 10, 10), np.int64)
    target[1:4, 1:4, 1:4] = 1
    target[6:9, 6:9, 6:9] = 2
    pred = target.copy()
    pred[1, 1:4, 1:4] = 0  # class 1 loses a face: Dice 2*18/(18+27)
    m = volume_metrics(pred, target, 3, spacing=(1.0, 1.0, 2.0), names={1: "anterior", 2: "posterior"})
    assert m["dice_anterior"] == pytest.approx(36 / 45) and m["dice_posterior"] == 1.0
    assert m["hd95_posterior"] == 0.0 and m["hd95_anterior"] > 0
    assert m["dice"] == pytest.approx((36 / 45 + 1) / 2)
    assert m["hd95"] == pytest.approx(m["hd95_anterior"] / 2)
    binary = volume_metrics(pred > 0, target > 0, 1)
    assert set(binary) == {"dice_fg", "hd95_fg", "dice", "hd95"}
