"""3D splits in memory: :class:`VolumeData`, the volume twin of ``SegmentationData``.

It offers what ``fit`` and ``evaluate_model`` use (``len``, ``channels``, ``image_size``, ``to``,
``subset``, ``batch``, ``batches``), so training and evaluation run on volumes unchanged. Images
are float32 and already normalised (z-score per volume), not uint8 in 0..255 as in 2D.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plsearch.data.dataset import SPLITS, SegmentationData, _index, _split, check_foreground, check_split_arrays
from plsearch.data.folder import DataError
from plsearch.data.volume import label_names, read_volume_folder

__all__ = ["VolumeData", "load_volume_folder", "load_volume_splits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumeData:
    """Volumes and labels of one split, in memory.

    Attributes:
        images: float32 ``(n, c, d, h, w)``, z-scored per volume.
        masks: uint8 ``(n, d, h, w)`` class indices.
        ids: one case id per volume.
        spacing: float64 ``(n, 3)``: mm per voxel of the stored grid (after resizing).
        shapes: int64 ``(n, 3)``: each file's own grid.
        affines: float64 ``(n, 4, 4)``: each file's affine.
        class_names: ``{value: name}`` from dataset.json (may be empty).
    """

    images: torch.Tensor
    masks: torch.Tensor
    ids: tuple[str, ...]
    spacing: np.ndarray
    shapes: np.ndarray
    affines: np.ndarray
    class_names: dict[int, str]

    def __post_init__(self) -> None:
        check_split_arrays(self.images, self.masks, self.ids, spatial_dims=3)
        object.__setattr__(self, "ids", tuple(self.ids))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def spatial_dims(self) -> int:
        return 3

    @property
    def image_size(self) -> tuple[int, int, int]:
        """``(d, h, w)``."""
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def _with(self, images: torch.Tensor, masks: torch.Tensor, idx: np.ndarray | None = None) -> VolumeData:
        pick = (lambda a: a) if idx is None else (lambda a: a[idx])
        ids = self.ids if idx is None else tuple(self.ids[i] for i in idx.tolist())
        return VolumeData(
            images, masks, ids, pick(self.spacing), pick(self.shapes), pick(self.affines), self.class_names
        )

    def to(self, device: torch.device | str) -> VolumeData:
        return self._with(self.images.to(device), self.masks.to(device))

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> VolumeData:
        """The volumes at ``indices``, in that order."""
        idx = _index(indices)
        dev = idx.to(self.device)
        return self._with(self.images[dev], self.masks[dev], idx.numpy())

    def batch(self, idx: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Volumes ``idx`` as model input: x float32 ``(b, c, d, h, w)``, y int64 ``(b, d, h, w)``."""
        dev = _index(idx).to(self.device)
        return self.images[dev].float(), self.masks[dev].long()

    batches = SegmentationData.batches  # same loop: it only uses len() and batch()


def load_volume_folder(
    path: str | Path, image_size: int, *, fit: str = "resize", num_classes: int | None = None, cache: bool = True
) -> VolumeData:
    """Every case of a volume folder (no split), checked against ``num_classes`` when given.

    Raises:
        DataError: one line naming the offending file (or the class count) and the fix.
    """
    root = Path(path).expanduser()
    a = read_volume_folder(root, image_size, fit=fit, cache=cache)
    names = label_names(root)
    present = int(a["masks"].max()) + 1 if a["masks"].size else 1
    k = max(len(names), present)
    if num_classes is not None:
        binary_ok = num_classes == 1 and k <= 2
        if num_classes != k and not binary_ok:
            raise DataError(
                f"{root} has {k} classes ({', '.join(names.get(i, str(i)) for i in range(k))}) but "
                f"model.num_classes={num_classes}; set model.num_classes={k}"
            )
    return VolumeData(
        torch.from_numpy(a["images"]),
        torch.from_numpy(a["masks"]),
        tuple(a["ids"].tolist()),
        a["spacing"],
        a["shapes"],
        a["affines"],
        names,
    )


def load_volume_splits(cfg, num_classes: int | None = None) -> dict[str, VolumeData]:
    """Train/val/test volumes of ``cfg.root`` (a ``DataConfig``), split like 2D folders.

    The split comes from ``cfg.split_csv`` or the folder's one ``split*.csv`` (val carved out of
    train when the file has none), else a seeded random split. The training size is the cube
    ``cfg.image_size``; ``cfg.volume_fit`` (``resize``, the default, or ``pad_crop``) says how to get there.
    """
    data = load_volume_folder(cfg.root, cfg.image_size, fit=cfg.volume_fit, num_classes=num_classes, cache=cfg.cache)
    check_foreground(data.masks, Path(cfg.root).expanduser() / "labelsTr", "voxel")
    split = _split(cfg, len(data), Path(cfg.root).expanduser(), data.ids, images="imagesTr")
    out = {s: data.subset(split[s]) for s in SPLITS}
    log.info("volume splits: %s", ", ".join(f"{s} {len(out[s])}" for s in SPLITS))
    return out
