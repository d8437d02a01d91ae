"""A synthetic nuclei-like segmentation set: deterministic from a seed, no files needed.

Each image is a dark, textured background with an uneven brightness, several bright elliptical
blobs of varying size, shape and brightness (some touching), then a gaussian blur and noise. The
mask is the union of the blob supports. Blobs are clearly visible, but a global threshold does not
separate them (background level and blob contrast vary per image), so a model has to learn
local contrast. Everything is batched torch code; 96 images at 64 px take a few milliseconds.
:data:`FORMAT` is the ``synthetic`` data format (:mod:`plsearch.data.formats`): ``data.root: ""``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from plsearch.config.schema import DataConfig
from plsearch.data.folder import grey_world
from plsearch.data.formats import DataFormat
from plsearch.data.splits import DataError, SegmentationData

__all__ = ["FORMAT", "SyntheticFormat", "make_synthetic", "synthetic_ids", "write_synthetic"]

MAX_BLOBS = 14


def _uniform(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _blob_params(g: torch.Generator, n: int, s: int) -> dict[str, torch.Tensor]:
    """Per image and blob ``(n, MAX_BLOBS)``: centre, semi-axes, angle, contrast, active."""
    k = MAX_BLOBS
    a = _uniform(g, (n, k), 0.045, 0.11) * s
    b = a * _uniform(g, (n, k), 0.55, 1.0)
    angle = _uniform(g, (n, k), 0.0, math.pi)
    contrast = _uniform(g, (n, k), 0.28, 0.6)
    count = torch.randint(3, k + 1, (n, 1), generator=g)
    active = torch.arange(k)[None, :] < count
    free = _uniform(g, (n, k, 2), 0.08 * s, 0.92 * s)
    touch = torch.rand((n, k), generator=g) < 0.35
    direction = _uniform(g, (n, k), 0.0, 2 * math.pi)
    gap = _uniform(g, (n, k), 0.8, 1.0)
    centre = free.clone()
    r = (a + b) / 2
    for j in range(1, k):  # a touching blob sits next to the previous one (a loop over blobs, not pixels)
        step = (r[:, j - 1] + r[:, j]) * gap[:, j]
        near = centre[:, j - 1] + step[:, None] * torch.stack([direction[:, j].cos(), direction[:, j].sin()], -1)
        centre[:, j] = torch.where(touch[:, j, None], near.clamp(0.05 * s, 0.95 * s), free[:, j])
    return {
        "cx": centre[..., 0],
        "cy": centre[..., 1],
        "a": a,
        "b": b,
        "angle": angle,
        "contrast": contrast,
        "active": active,
    }


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable gaussian blur of ``(n, c, h, w)``, reflect padding."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _blobs(p: dict[str, torch.Tensor], s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blob brightness ``(n, s, s)`` and support ``(n, s, s)`` bool, each blob drawn in its own window.

    Only a window around each blob is evaluated (about 5 % of the image), then scattered with a max.
    """
    n, k = p["cx"].shape
    w = int(math.ceil(2 * float(p["a"].max()))) + 3 if n else 1  # a >= b, so the window holds the ellipse
    ox = p["cx"].floor().long() - w // 2  # (n, k) window origin
    oy = p["cy"].floor().long() - w // 2
    t = torch.arange(w)
    px = ox[..., None] + t  # (n, k, w) pixel columns
    py = oy[..., None] + t
    dx = (px.float() + 0.5 - p["cx"][..., None])[:, :, None, :]  # (n, k, 1, w)
    dy = (py.float() + 0.5 - p["cy"][..., None])[:, :, :, None]  # (n, k, w, 1)
    cos, sin = p["angle"].cos()[..., None, None], p["angle"].sin()[..., None, None]
    u = (dx * cos + dy * sin) / p["a"][..., None, None]
    v = (dy * cos - dx * sin) / p["b"][..., None, None]
    d = u * u + v * v  # (n, k, w, w): < 1 inside the ellipse
    valid = ((px >= 0) & (px < s))[:, :, None, :] & ((py >= 0) & (py < s))[:, :, :, None]
    inside = (d <= 1) & valid & p["active"][..., None, None]
    # brighter centre, dimmer rim, like a stained nucleus; > 0 everywhere inside
    value = torch.where(inside, p["contrast"][..., None, None] * (1 - 0.35 * d), torch.zeros(()))
    index = (py.clamp(0, s - 1)[:, :, :, None] * s + px.clamp(0, s - 1)[:, :, None, :]).reshape(n, -1)
    blob = torch.zeros((n, s * s)).scatter_reduce_(1, index, value.reshape(n, -1), "amax")
    return blob.view(n, s, s), blob.view(n, s, s) > 0


def _render(g: torch.Generator, p: dict[str, torch.Tensor], s: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render a chunk: images float ``(n, channels, s, s)`` in [0, 1], masks bool ``(n, s, s)``."""
    n = p["cx"].shape[0]
    blob, mask = _blobs(p, s)
    xs = torch.arange(s, dtype=torch.float32) + 0.5
    level = _uniform(g, (n, 1, 1), 0.04, 0.35)
    texture = F.interpolate(torch.randn((n, 1, 6, 6), generator=g), size=(s, s), mode="bicubic", align_corners=False)[
        :, 0
    ] * _uniform(g, (n, 1, 1), 0.03, 0.08)
    theta = _uniform(g, (n, 1, 1), 0.0, 2 * math.pi)
    ramp = (xs.view(1, 1, s) * theta.cos() + xs.view(1, s, 1) * theta.sin()) / s
    background = level + texture + _uniform(g, (n, 1, 1), 0.0, 0.15) * ramp  # smooth: needs no blur
    grain = torch.randn((n, s, s), generator=g) * 0.04 * mask  # chromatin-like texture inside blobs
    # blur is linear, so blurring the one-channel foreground before tinting = blurring the RGB image
    fg = _gaussian_blur((blob + grain)[:, None], sigma=max(0.6, s / 96))

    colour = torch.rand((n, 1), generator=g) < 0.3  # a third of the images tinted, like dsb2018
    bg_tint = torch.where(colour, _uniform(g, (n, 3), 0.6, 1.0), torch.ones(()))[:, :channels]
    fg_tint = torch.where(colour, _uniform(g, (n, 3), 0.6, 1.0), torch.ones(()))[:, :channels]
    img = background[:, None] * bg_tint[..., None, None] + fg * fg_tint[..., None, None]
    img = img + torch.randn(img.shape, generator=g) * _uniform(g, (n, 1, 1, 1), 0.015, 0.06)
    return img.clamp_(0, 1), mask


def make_synthetic(count: int, image_size: int, seed: int, channels: int = 3) -> SegmentationData:
    """A deterministic nuclei-like data set.

    Args:
        count: number of images.
        image_size: square side in pixels (>= 16 to show anything useful).
        seed: the same seed gives the same data; different seeds give different data.
        channels: 3 (RGB) or 1 (grey).

    Returns:
        SegmentationData with uint8 images ``(count, channels, s, s)``, 0/1 masks ``(count, s, s)``,
        ids ``synth_0000``...
    """
    if count < 0 or image_size < 8:
        raise ValueError(f"count={count} must be >= 0 and image_size={image_size} >= 8")
    if channels not in (1, 3):
        raise ValueError(f"channels={channels} is not allowed; choose 1 or 3")
    g = torch.Generator().manual_seed(int(seed))
    params = _blob_params(g, count, image_size)
    chunk = max(1, (1 << 22) // (image_size * image_size))  # bound each (n, c, s, s) temporary to ~50 MB
    images, masks = [], []
    for start in range(0, count, chunk):
        img, m = _render(g, {k: v[start : start + chunk] for k, v in params.items()}, image_size, channels)
        images.append(img.mul_(255).round_().to(torch.uint8))
        masks.append(m.to(torch.uint8))
    if not images:
        images = [torch.zeros((0, channels, image_size, image_size), dtype=torch.uint8)]
        masks = [torch.zeros((0, image_size, image_size), dtype=torch.uint8)]
    return SegmentationData(torch.cat(images), torch.cat(masks), synthetic_ids(count))


def synthetic_ids(count: int) -> tuple[str, ...]:
    """The ids of a synthetic set of ``count`` images: ``synth_0000``, ..."""
    return tuple(f"synth_{i:04d}" for i in range(count))


def write_synthetic(directory: str | Path, count: int, image_size: int, seed: int, channels: int = 3) -> Path:
    """Write :func:`make_synthetic` as a data folder: ``images/<id>.png`` and ``masks/<id>.png`` (0/255).

    Returns:
        The folder, ready for ``load_folder`` or ``DataConfig(root=...)``.
    """
    from PIL import Image

    root = Path(directory)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    data = make_synthetic(count, image_size, seed, channels=channels)
    images = data.images.permute(0, 2, 3, 1).numpy()
    masks = data.masks.numpy() * np.uint8(255)
    for i, sid in enumerate(data.ids):
        img = images[i, ..., 0] if channels == 1 else images[i]
        Image.fromarray(img).save(root / "images" / f"{sid}.png")
        Image.fromarray(masks[i]).save(root / "masks" / f"{sid}.png")
    return root


class SyntheticFormat(DataFormat):
    """plsearch's own nuclei set, made in memory from ``data.seed`` (``data.root: ""``): no folder, no files."""

    name = "synthetic"
    spatial_dims = 2
    suffixes: tuple[str, ...] = ()
    images_dir = ""
    masks_dir = ""

    def detect(self, root: Path) -> bool:
        return False  # no folder is the synthetic set: data.root "" is (plsearch.data.formats.detect_format)

    def ids(self, cfg: DataConfig) -> list[str]:
        return list(synthetic_ids(cfg.synthetic_count))

    def example(self, folder: Path) -> str:
        return ""  # made in memory: data.root ""

    def load(self, cfg: DataConfig, num_classes: int | None = None) -> SegmentationData:
        data = make_synthetic(
            cfg.synthetic_count, cfg.image_size, cfg.seed, channels=1 if cfg.channels == "grey" else 3
        )
        if not cfg.grey_world:
            return data
        return SegmentationData(torch.from_numpy(grey_world(data.images.numpy())), data.masks, data.ids)

    def read(self, path: Path, channels: int | str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
        raise DataError(f"the synthetic set has no files, so {path} is none of its; pass an image or NIfTI file")


FORMAT = SyntheticFormat()
