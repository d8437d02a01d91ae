from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from plsearch.data.dataset import load_folder
from plsearch.data.synthetic import make_synthetic, write_synthetic


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))


def test_same_seed_same_data_different_seed_different():
    a, b, c = make_synthetic(12, 48, 3), make_synthetic(12, 48, 3), make_synthetic(12, 48, 4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and a.ids == b.ids
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.masks, c.masks)


def test_shapes_dtypes_and_channels():
    d = make_synthetic(5, 40, 0)
    assert d.images.shape == (5, 3, 40, 40) and d.images.dtype == torch.uint8
    assert d.masks.shape == (5, 40, 40) and d.masks.dtype == torch.uint8
    assert set(d.masks.unique().tolist()) == {0, 1}
    assert d.ids == tuple(f"synth_{i:04d}" for i in range(5))
    assert make_synthetic(2, 32, 0, channels=1).images.shape == (2, 1, 32, 32)
    assert len(make_synthetic(0, 32, 0)) == 0
    with pytest.raises(ValueError, match="channels"):
        make_synthetic(2, 32, 0, channels=2)


def test_masks_are_nontrivial_and_blobs_visible():
    d = make_synthetic(64, 64, 1)
    fg = d.masks.float().mean(dim=(1, 2))
    assert fg.min() > 0.01 and fg.max() < 0.45, fg
    assert 0.05 < fg.mean() < 0.3
    x = d.images.float().mean(1) / 255
    m = d.masks.bool()
    # every image: blobs clearly brighter than its own background
    for i in range(len(d)):
        assert x[i][m[i]].mean() > x[i][~m[i]].mean() + 0.15
    # several blobs per image: more than one connected region in most masks (crude: rows with fg)
    assert (m.any(dim=2).sum(1) > 8).float().mean() > 0.8


def test_not_trivially_thresholdable():
    d = make_synthetic(64, 64, 2)
    grey = d.images.float().mean(1).round().long().flatten()  # 0..255
    m = d.masks.bool().flatten()
    above_all = torch.bincount(grey, minlength=256).flip(0).cumsum(0).flip(0)  # pixels >= t, every t
    above_fg = torch.bincount(grey[m], minlength=256).flip(0).cumsum(0).flip(0)
    dice = 2 * above_fg / (above_all + m.sum())
    best = float(dice.max())
    assert best < 0.9, f"a single global threshold reaches Dice {best:.3f}: too easy"
    assert best > 0.4  # but the blobs are the bright things


@pytest.mark.slow  # a timing bound: out of the default run, where a busy machine could fail it
def test_fast():
    make_synthetic(8, 64, 0)  # warm-up
    t = time.perf_counter()
    make_synthetic(96, 64, 0)
    assert time.perf_counter() - t < 20.0  # ~0.03 s on an idle core; per-pixel loops would take minutes


def test_write_then_load_round_trip(tmp_path):
    root = write_synthetic(tmp_path / "synth", 6, 32, seed=5)
    assert sorted(p.name for p in (root / "images").iterdir())[0] == "synth_0000.png"
    assert Image.open(root / "masks" / "synth_0000.png").mode == "L"
    d = make_synthetic(6, 32, 5)
    same = load_folder(root, 32)
    assert same.ids == d.ids
    assert torch.equal(same.images, d.images)
    assert torch.equal(same.masks, d.masks)
    half = load_folder(root, 16)
    ref = F.interpolate(d.images.float(), size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    assert (half.images.float() - ref).abs().mean() < 4.0  # Pillow vs torch antialiasing, in grey levels
    assert (half.masks == d.masks[:, ::2, ::2]).float().mean() > 0.9


def test_write_grey(tmp_path):
    root = write_synthetic(tmp_path / "g", 3, 24, seed=0, channels=1)
    assert Image.open(root / "images" / "synth_0001.png").mode == "L"
    assert load_folder(root, 24).channels == 1


class _TinyUNet(torch.nn.Module):
    def __init__(self, w: int = 8) -> None:
        super().__init__()

        def block(i: int, o: int) -> torch.nn.Module:
            return torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU())

        self.e1 = torch.nn.Sequential(block(3, w), block(w, w))
        self.e2 = torch.nn.Sequential(block(w, 2 * w), block(2 * w, 2 * w))
        self.e3 = torch.nn.Sequential(block(2 * w, 4 * w), block(4 * w, 4 * w))
        self.d2, self.d1, self.head = block(6 * w, 2 * w), block(3 * w, w), torch.nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.e3(F.max_pool2d(b, 2))
        b = self.d2(torch.cat([b, F.interpolate(c, scale_factor=2.0)], 1))
        return self.head(self.d1(torch.cat([a, F.interpolate(b, scale_factor=2.0)], 1)))[:, 0]


@pytest.mark.slow
def test_a_tiny_model_learns_it():
    torch.manual_seed(0)
    data = make_synthetic(80, 32, 0)
    train, test = data.subset(range(48)), data.subset(range(48, 80))
    net = _TinyUNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        for x, y, _ in train.batches(8, shuffle=True, generator=g):
            p, yf = torch.sigmoid(net(x)), y.float()
            loss = F.binary_cross_entropy(p, yf) + 1 - (2 * (p * yf).sum() + 1) / (p.sum() + yf.sum() + 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    x, y = test.batch(torch.arange(len(test)))
    with torch.no_grad():
        p = net(x) > 0
    dice = float(2 * (p & y.bool()).sum() / (p.sum() + y.sum()))
    assert dice > 0.8, dice
