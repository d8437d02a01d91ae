"""The old names of 3D splits, kept importable: a volume split is a :class:`~plsearch.data.splits.SegmentationData`.

``VolumeData`` is ``SegmentationData`` (one type for 2D and 3D; volumes carry ``spacing``, ``shapes``,
``affines`` and ``class_names``); ``load_volume_folder`` lives in :mod:`plsearch.data.volume` (the ``msd``
format); ``load_volume_splits`` is :func:`plsearch.data.dataset.load_splits` on a volume folder.
"""

from __future__ import annotations

from plsearch.config.schema import DataConfig
from plsearch.data.dataset import load_splits
from plsearch.data.splits import SegmentationData
from plsearch.data.volume import load_volume_folder

__all__ = ["VolumeData", "load_volume_folder", "load_volume_splits"]

VolumeData = SegmentationData


def load_volume_splits(cfg: DataConfig, num_classes: int | None = None) -> dict[str, SegmentationData]:
    """Train/val/test volumes of ``cfg.root``: :func:`plsearch.data.dataset.load_splits`."""
    return load_splits(cfg, num_classes=num_classes)
