"""Load a run's data: the format of ``data.root`` from the registry, its samples, one split for every format.

``load_splits(cfg)`` is what training and the search call: the format that claims ``cfg.root``
(:func:`plsearch.data.formats.detect_format`; ``""`` is the synthetic set) loads every sample as one
:class:`SegmentationData`, and :func:`plsearch.data.splits.split_ids` splits them. ``load_data`` (every
sample, no split) serves evaluate's ``--split all``; ``peek`` reads what file headers tell before decoding.
The names the old ``plsearch.data`` module exported stay importable from here.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import cast

from plsearch.config.schema import ChannelMode, DataConfig
from plsearch.data.folder import cache_dir, grey_world, list_pairs, read_image
from plsearch.data.formats import DataHeader, detect_format
from plsearch.data.splits import (
    SPLITS,
    DataError,
    SegmentationData,
    check_foreground,
    split_ids,
    split_indices,
    to_input,
)

__all__ = [
    "DataError",
    "DataHeader",
    "SegmentationData",
    "cache_dir",
    "check_foreground",
    "grey_world",
    "list_ids",
    "list_pairs",
    "load_data",
    "load_folder",
    "load_splits",
    "peek",
    "read_image",
    "split_indices",
    "to_input",
]

log = logging.getLogger(__name__)


def load_data(cfg: DataConfig, num_classes: int | None = None) -> SegmentationData:
    """Every sample of ``cfg.root`` (no split), loaded by its format; for evaluate's ``--split all``.

    Raises:
        DataError: one line naming the offending file and the fix.
    """
    return detect_format(cfg.root).load(cfg, num_classes)


def load_folder(
    path: str | Path,
    image_size: int,
    *,
    channels: str = "auto",
    num_classes: int = 1,
    grey_world: bool = False,
    cache: bool = True,
) -> SegmentationData:
    """Every sample of a data folder in any registered format, no split; :func:`load_data` with these settings.

    Args:
        path: the folder (``images/`` + ``masks/``, ``imagesTr/`` + ``labelsTr/``, or a plug-in's layout).
        image_size: square side (images bilinear, masks nearest; volumes: the cube, resized).
        channels: "auto" (3 if any image has colour, else 1), "rgb" or "grey".
        num_classes: 1 for binary masks (0/255 or 0/1); k >= 2 for class-index masks.
        grey_world: apply grey-world colour normalisation to the images.
        cache: reuse decoded arrays cached under ``$PLSEARCH_CACHE_DIR``.

    Raises:
        DataError: one line naming the offending file and the fix.
    """
    if channels not in ("auto", "rgb", "grey"):
        raise ValueError(f"channels={channels!r} is not allowed; choose one of ['auto', 'rgb', 'grey']")
    mode = cast(ChannelMode, channels)  # checked above
    cfg = replace(
        DataConfig(), root=str(path), image_size=image_size, channels=mode, grey_world=grey_world, cache=cache
    )
    return load_data(cfg, num_classes)


def load_splits(cfg: DataConfig, num_classes: int | None = 1) -> dict[str, SegmentationData]:
    """Train/val/test data for a run, the same way for every format.

    ``cfg.root == ""``: the synthetic set (``cfg.synthetic_count`` images). Otherwise the folder
    ``cfg.root`` in whichever registered format claims it, split by ``cfg.split_csv`` or the one
    ``split*.csv`` in the folder (``id,split`` with train/val/test; without val, val is carved out of
    train by ``cfg.val_fraction``), else by a seeded random split with ``cfg.val_fraction`` /
    ``cfg.test_fraction`` (:func:`plsearch.data.splits.split_ids`).

    ``num_classes``: what the masks must fit (1: binary; None: not checked, where the format allows).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}`` (a split may be empty when its fraction is 0).

    Raises:
        DataError: one line naming the offending file and the fix.
    """
    fmt = detect_format(cfg.root)
    data = fmt.load(cfg, num_classes)
    root = Path(cfg.root).expanduser() if cfg.root else None  # no folder (synthetic): no split file either
    where = root / fmt.masks_dir if root is not None else f"the {fmt.name} set"
    check_foreground(data.masks, where, "pixel" if data.spatial_dims == 2 else "voxel")
    split = split_ids(cfg, data.ids, root, fmt.images_dir)
    out = {s: data.subset(split[s]) for s in SPLITS}
    log.info("%s splits: %s", fmt.name, ", ".join(f"{s} {len(out[s])}" for s in SPLITS))
    return out


def list_ids(cfg: DataConfig) -> list[str]:
    """Every sample id of ``cfg.root`` (the synthetic set's too), in load order, nothing decoded."""
    return detect_format(cfg.root).ids(cfg)


def peek(cfg: DataConfig) -> DataHeader | None:
    """The channels and dims of ``cfg.root`` from its file headers, nothing decoded (so that checks that need
    them, the memory check included, run before the data is loaded); None where the format learns them by
    decoding (2D folders, the synthetic set)."""
    return detect_format(cfg.root).header(Path(cfg.root).expanduser())
