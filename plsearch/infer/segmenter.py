"""Use a trained network from Python: ``plsearch.load`` and ``plsearch.Segmenter``.

    model = plsearch.load("runs/dsb/best.pt")          # or "results/ipl_epl:12" (a search trial's kept weights)
    masks = plsearch.Segmenter(model).predict("img.png")   # uint8 labels at the image's own size

``load`` returns the eval-mode network with its preprocessing attached (``model.preprocessing``): the
training size, how inputs were brought to it (resized, or padded for volumes whose spacing is kept),
grey-world, channels. ``Segmenter.predict`` takes 2D images ``(h, w)`` / ``(c, h, w)`` and 3D volumes
``(d, h, w)`` / ``(c, d, h, w)`` (arrays, tensors, or paths of files a registered data format reads: images,
NIfTI volumes, a plug-in's; :func:`plsearch.data.formats.format_for_file`) and returns class labels at the
input's size.

Two ways to run (``mode``):
- ``resize`` (the default for networks trained on resized inputs, i.e. every 2D folder): the input is
  resized to the training size, segmented, and its logits resized back: what training saw.
- ``sliding``: the network runs at the input's own resolution in overlapping tiles (Gaussian-weighted
  blend, as nnU-Net), so any input size runs in bounded memory. The tile is the largest cube (square)
  whose activations, by :func:`plsearch.graph.memory.activation_bytes`, fit ``memory_bytes`` (default 512 MiB)
  with ``batch_size`` tiles at once. Peak memory is then at most :func:`peak_bytes_estimate`: 1.7 x
  ``memory_bytes`` (the process's peak RSS on the CPU ran 1.53-1.55 x the live-tensor estimate), plus
  the weights, plus ``(num_classes + channels + 1) x 4 + 1`` bytes per input voxel for the input, the
  blended logits, the weight map and the labels. Measured (``benchmarks/segmenter_memory.py``): a
  2048x2048 RGB image with PL-Net-dagger, 859 MiB over the baseline (bound 942 MiB); a 256^3 volume
  with a 3-class 3D U-Net, 934 MiB (bound 992 MiB).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Preprocessing", "Segmenter", "load", "preprocessing_from"]

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 512 << 20


@dataclass(frozen=True)
class Preprocessing:
    """How a network's inputs were prepared in training (read from its checkpoint's run config).

    Attributes:
        spatial_dims: 2 (images) or 3 (volumes).
        in_channels, num_classes: of the network (num_classes 1 = binary, sigmoid).
        image_size: the training side (square / cube).
        fit: ``resize`` or ``pad_crop`` (``data.volume_fit``: volumes with spacing kept); chooses ``Segmenter``'s
            default mode.
        grey_world: 2D colour normalisation applied to uint8 images.
        class_names: ``{value: name}`` when known (volumes: dataset.json).
    """

    spatial_dims: int = 2
    in_channels: int = 3
    num_classes: int = 1
    image_size: int = 224
    fit: str = "resize"
    grey_world: bool = False
    class_names: dict[int, str] = field(default_factory=dict)


def preprocessing_from(model_config: Any, run_config: dict[str, Any] | None) -> Preprocessing:
    """The ``Preprocessing`` of a checkpoint: its model config plus the data section of its run config."""
    data = (run_config or {}).get("data", {}) or {}
    names: dict[int, str] = {}
    root = data.get("root") or ""
    if root:
        from plsearch.data.formats import detect_format

        try:
            names = detect_format(root).class_names(Path(root).expanduser())
        except (OSError, ValueError):  # the data folder moved: names are a nicety
            names = {}
    return Preprocessing(
        spatial_dims=model_config.spatial_dims,
        in_channels=model_config.in_channels,
        num_classes=model_config.num_classes,
        image_size=int(data.get("image_size", 224)),
        fit=str(data.get("volume_fit", "resize")),
        grey_world=bool(data.get("grey_world", False)),
        class_names=names,
    )


def load(ref: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """A trained network, in eval mode on ``device``, with ``.preprocessing`` and ``.checkpoint_path`` set.

    Args:
        ref: a checkpoint (``RUN/best.pt``), a run folder holding ``best.pt``, or a search trial
            ``results/NAME:12`` whose weights the search kept (:mod:`plsearch.infer.artifacts`).

    Raises:
        CheckpointError / ArtifactError: one line naming what is missing and the fix.
    """
    from plsearch.nn.checkpoint import load_checkpoint

    path = resolve_checkpoint(ref)
    model, ckpt = load_checkpoint(path, device=device)
    model.preprocessing = preprocessing_from(model.config, ckpt.get("run_config"))  # type: ignore[assignment]
    model.checkpoint_path = str(path)  # type: ignore[assignment]
    return model


def resolve_checkpoint(ref: str | Path) -> Path:
    """A checkpoint file for ``ref``: the file itself, ``FOLDER/best.pt``, or a trial's kept weights."""
    p = Path(ref)
    if p.is_file():
        return p
    if p.is_dir() and (p / "best.pt").is_file():
        return p / "best.pt"
    text = str(ref)
    if ":" in text and text.rpartition(":")[2].isdigit():
        from plsearch.config.naming import parse_trial_ref
        from plsearch.infer.artifacts import trial_checkpoint

        return trial_checkpoint(parse_trial_ref(text))
    return p  # load_checkpoint says it does not exist


def _gaussian(tile: Sequence[int]) -> torch.Tensor:
    """nnU-Net's blend weights: a Gaussian of sigma tile/8 per axis, never below 1e-3 of its peak."""
    w = torch.ones(())
    for n in tile:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        g = torch.exp(-0.5 * (x / (n / 8)) ** 2)
        w = w[..., None] * g
    return (w / w.max()).clamp_min(1e-3)


def _labels(logits: torch.Tensor, slab_voxels: int = 1 << 20) -> np.ndarray:
    """``(k, *spatial)`` logits -> uint8 labels ``(*spatial)`` as ``metrics.logits_to_labels`` gives them,
    in slabs along the first axis (argmax of the whole input at once would make an int64 copy: 8 bytes a voxel)."""
    spatial = logits.shape[1:]
    out = torch.empty(spatial, dtype=torch.uint8)
    step = max(1, slab_voxels // max(1, math.prod(spatial[1:])))
    for i in range(0, spatial[0], step):
        part = logits[:, i : i + step]
        out[i : i + step] = (part[0] > 0) if logits.shape[0] == 1 else part.argmax(0)
    return out.numpy()


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    s = list(range(0, length - tile + 1, step))
    if s[-1] != length - tile:
        s.append(length - tile)
    return s


class Segmenter:
    """Predict masks with a trained network (see the module docstring for the two modes and memory).

    Args:
        model: from :func:`load` (or any ``PLNet``; without ``.preprocessing`` one is made from its
            config and ``preprocessing``'s overrides).
        mode: ``auto`` (``resize`` unless the network was trained on padded volumes), ``resize`` or ``sliding``.
        tile: sliding-window side; default from the memory budget.
        overlap: fraction of a tile shared with its neighbour (sliding mode).
        batch_size: images, or tiles, per forward.
        memory_bytes: activation budget for one forward (sliding mode).
        device: where the network runs.
        preprocessing: overrides (e.g. ``Preprocessing(image_size=64, ...)``) for a bare model.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mode: str = "auto",
        tile: int | None = None,
        overlap: float = 0.5,
        batch_size: int = 4,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        device: str | torch.device | None = None,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        if mode not in ("auto", "resize", "sliding"):
            raise ValueError(f"mode={mode!r} is not one of ['auto', 'resize', 'sliding']")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap={overlap} must be in [0, 1)")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        cfg = getattr(model, "config", None)
        pre = preprocessing or getattr(model, "preprocessing", None)
        if pre is None:
            if cfg is None:
                raise ValueError("a model without .config needs preprocessing=Preprocessing(...)")
            pre = Preprocessing(cfg.spatial_dims, cfg.in_channels, cfg.num_classes)
        self.model, self.pre = model.eval(), pre
        self.mode = ("sliding" if pre.fit in ("pad_crop", "pad") else "resize") if mode == "auto" else mode
        self.overlap, self.batch_size, self.memory_bytes = overlap, batch_size, memory_bytes
        p = next(model.parameters(), None)
        here = p.device if p is not None else torch.device("cpu")
        self.device = torch.device(device) if device is not None else here
        self.model.to(self.device)
        self.tile = tile or self._tile_from_memory(cfg)

    def _tile_from_memory(self, cfg: Any) -> int:
        if cfg is None:
            return self.pre.image_size
        from plsearch.graph.memory import largest_side

        side = largest_side(cfg, self.memory_bytes, batch=self.batch_size)
        if side == 0:
            raise ValueError(
                f"not even one tile of the network's stride fits memory_bytes={self.memory_bytes}; "
                "raise memory_bytes or lower batch_size"
            )
        return side

    # -- inputs --------------------------------------------------------------------------------------
    def _prepare(self, item: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """One input -> float32 ``(c, *spatial)`` in the network's input scale, plus what to write it back with.

        A path is read by its data format (:func:`plsearch.data.formats.format_for_file`) into the array it
        would be as an input (2D uint8, 3D raw intensities), then prepared as arrays are.
        """
        from plsearch.data.folder import grey_world
        from plsearch.data.formats import format_for_file
        from plsearch.data.volume import zscore

        meta: dict[str, Any] = {}
        if isinstance(item, (str, Path)):
            path = Path(item)
            item, meta = format_for_file(path).read(path, self.pre.in_channels)
            meta = {**meta, "path": path}
        x = torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item).detach().cpu()
        dims = self.pre.spatial_dims
        if x.dim() == dims:
            x = x[None]
        if x.dim() != dims + 1:
            want = "(h, w) or (c, h, w)" if dims == 2 else "(d, h, w) or (c, d, h, w)"
            raise ValueError(f"input of shape {tuple(x.shape)} does not fit a {dims}D network; pass {want}")
        if x.shape[0] != self.pre.in_channels:
            raise ValueError(f"input has {x.shape[0]} channels but the network takes {self.pre.in_channels}")
        if dims == 3:
            return torch.from_numpy(zscore(x.float().numpy())), meta
        if x.dtype == torch.uint8:
            a = grey_world(x.numpy()) if self.pre.grey_world else x.numpy()
            return torch.from_numpy(a).float().div_(255.0), meta
        return x.float(), meta  # float images: already in [0, 1]

    # -- running -------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Fused logits ``(k, *spatial)`` at ``x``'s size for one prepared input ``x (c, *spatial)``."""
        if self.mode == "resize":
            return self._resized([x])[0]
        return self._sliding(x)

    def _interp(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if tuple(x.shape[2:]) == tuple(size):
            return x
        mode = "bilinear" if x.dim() == 4 else "trilinear"
        return F.interpolate(
            x,
            size=tuple(size),
            mode=mode,
            align_corners=False,
            antialias=mode == "bilinear" and any(s > t for s, t in zip(x.shape[2:], size)),
        )

    def _resized(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        size = (self.pre.image_size,) * self.pre.spatial_dims
        out = []
        for start in range(0, len(xs), self.batch_size):
            chunk = xs[start : start + self.batch_size]
            batch = torch.cat([self._interp(x[None], size) for x in chunk]).to(self.device)
            lg = self.model(batch).float().cpu()
            out += [self._interp(lg[i : i + 1], x.shape[1:])[0] for i, x in enumerate(chunk)]
        return out

    def _sliding(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(x.shape[1:])
        tile = tuple(min(self.tile, n) for n in spatial)
        steps = [max(1, int(t * (1 - self.overlap))) for t in tile]
        grids = [_starts(n, t, s) for n, t, s in zip(spatial, tile, steps)]
        weight = _gaussian(tile)
        k = self.pre.num_classes
        acc = torch.zeros((k, *spatial))
        norm = torch.zeros(spatial)
        corners = [c for c in np.ndindex(*[len(g) for g in grids])]
        for start in range(0, len(corners), self.batch_size):
            chunk = [tuple(g[i] for g, i in zip(grids, c)) for c in corners[start : start + self.batch_size]]
            windows = [tuple(slice(o, o + t) for o, t in zip(origin, tile)) for origin in chunk]
            batch = torch.stack([x[(slice(None),) + w] for w in windows]).to(self.device)
            lg = self.model(batch).float().cpu()
            for w, out in zip(windows, lg):
                acc[(slice(None),) + w] += out * weight  # not (slice(None), *w): mypy reads that as 3.11 syntax
                norm[w] += weight
        return acc.div_(norm)  # in place: a second (k, *spatial) buffer would add k x 4 bytes per voxel

    @torch.no_grad()  # without it a 512x512 image in tiles held 7 GB of autograd graph (benchmarks/segmenter_memory.py)
    def predict(self, inputs: Any) -> np.ndarray | list[np.ndarray]:
        """Class labels (uint8) at each input's own size; a list in, a list out.

        Args:
            inputs: an image or volume (array, tensor, image path, NIfTI path) or a list of them.
                2D uint8 arrays are scaled by 1/255 (float arrays are taken as already in [0, 1]);
                3D arrays hold raw intensities (z-scored here, as in training).
        """
        many = isinstance(inputs, (list, tuple))
        items = list(inputs) if many else [inputs]
        prepared = [self._prepare(i)[0] for i in items]
        if self.mode == "resize":
            logits = []
            for start in range(0, len(prepared), self.batch_size):
                logits += self._resized(prepared[start : start + self.batch_size])
        else:
            logits = [self._sliding(x) for x in prepared]
        labels = [_labels(lg) for lg in logits]
        return labels if many else labels[0]

    @torch.no_grad()
    def predict_file(self, path: str | Path, out: str | Path) -> Path:
        """Segment one file and write its mask as the file's data format writes masks: NIfTI with the input's
        affine for volumes, PNG for images (0/255 for binary networks, class indices otherwise)."""
        from plsearch.data.formats import format_for_file

        x, meta = self._prepare(path)
        labels = _labels(self.logits(x))
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        return format_for_file(path).write(out, labels, meta, binary=self.pre.num_classes == 1)

    def with_mode(self, mode: str, **kw: Any) -> Segmenter:
        """The same network in another mode (e.g. ``sliding`` for a large input)."""
        return Segmenter(
            self.model,
            mode=mode,
            tile=kw.get("tile"),
            overlap=kw.get("overlap", self.overlap),
            batch_size=kw.get("batch_size", self.batch_size),
            device=self.device,
            memory_bytes=kw.get("memory_bytes", self.memory_bytes),
            preprocessing=replace(self.pre),
        )


# Peak RSS of a forward over plsearch.graph.memory's live-tensor estimate, fp32 on the CPU: oneDNN's reordered
# copies and the allocator's cache. Measured 1.53 (2D PL-Net-dagger, 448^2 tiles) and 1.55 (3D U-Net, 80^3
# tiles) by benchmarks/segmenter_memory.py; 1.7 leaves a margin. Not measured on a GPU.
RSS_OVERHEAD = 1.7


def peak_bytes_estimate(
    model_config: Any,
    shape: Sequence[int],
    *,
    tile: int,
    batch: int,
    num_classes: int,
    channels: int,
    overhead: float = RSS_OVERHEAD,
) -> int:
    """Sliding mode's memory bound for an input of ``shape`` (spatial), weights not included.

    ``overhead`` x the tile batch's activations (:func:`plsearch.graph.memory.activation_bytes`), plus per input
    voxel: the float32 input, the blended logits, the weight map and the uint8 labels,
    ``(num_classes + channels + 1) x 4 + 1`` bytes.
    """
    from plsearch.graph.memory import activation_bytes

    voxels = math.prod(shape)
    act = activation_bytes(model_config, tile, batch)
    return int(overhead * act) + ((num_classes + channels + 1) * 4 + 1) * voxels
