"""Segmentation data sets in memory, their train/val/test splits, and batching.

A data set is a few hundred images, so it lives in memory as uint8 tensors (optionally on the GPU)
and batches are plain indexing: no DataLoader, no workers. Folders are read by
:mod:`plsearch.data.folder`; ``DataConfig.root == ""`` means the synthetic nuclei set
(:mod:`plsearch.data.synthetic`).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from plsearch.config.schema import DataConfig
from plsearch.data.folder import DataError, cache_dir, grey_world, list_pairs, read_folder, read_image

__all__ = [
    "DataError",
    "DataHeader",
    "SegmentationData",
    "cache_dir",
    "check_foreground",
    "grey_world",
    "list_pairs",
    "load_folder",
    "load_splits",
    "peek",
    "read_image",
    "split_indices",
    "to_input",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(b, c, h, w)`` -> float32 model input in [0, 1] (what ``batches`` yields)."""
    return images.float().div_(255.0)


def check_split_arrays(images: torch.Tensor, masks: torch.Tensor, ids: Sequence[str], *, spatial_dims: int) -> None:
    """The in-memory contract of a split, 2D (``SegmentationData``) or 3D (``VolumeData``): images uint8
    ``(n, c, h, w)`` or float ``(n, c, d, h, w)`` (volumes arrive z-scored), masks uint8 ``(n, *spatial)``,
    one id per sample, the same spatial shape. Raises ``ValueError`` naming the shapes."""
    axes = "h, w" if spatial_dims == 2 else "d, h, w"
    kind = "uint8" if spatial_dims == 2 else "float"
    right_kind = images.dtype == torch.uint8 if spatial_dims == 2 else images.is_floating_point()
    if not right_kind or images.dim() != spatial_dims + 2:
        raise ValueError(f"images must be {kind} (n, c, {axes}), got {images.dtype} {tuple(images.shape)}")
    if masks.dtype != torch.uint8 or masks.dim() != spatial_dims + 1:
        raise ValueError(f"masks must be uint8 (n, {axes}), got {masks.dtype} {tuple(masks.shape)}")
    n = images.shape[0]
    if masks.shape[0] != n or len(ids) != n or masks.shape[1:] != images.shape[2:]:
        raise ValueError(f"images {tuple(images.shape)}, masks {tuple(masks.shape)} and {len(ids)} ids disagree")


@dataclass(frozen=True)
class SegmentationData:
    """Images and masks of one split, in memory.

    Attributes:
        images: uint8 ``(n, c, h, w)`` (grey-world already applied when DataConfig.grey_world).
        masks: uint8 ``(n, h, w)`` class indices (binary: 0/1).
        ids: one id per sample (the file stem).
    """

    images: torch.Tensor
    masks: torch.Tensor
    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        check_split_arrays(self.images, self.masks, self.ids, spatial_dims=2)
        object.__setattr__(self, "ids", tuple(self.ids))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """``(h, w)``."""
        return (self.images.shape[2], self.images.shape[3])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> SegmentationData:
        """The same data on ``device`` (a few hundred images fit on any GPU)."""
        return SegmentationData(self.images.to(device), self.masks.to(device), self.ids)

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> SegmentationData:
        """The samples at ``indices``, in that order."""
        idx = _index(indices)
        dev = idx.to(self.device)
        return SegmentationData(self.images[dev], self.masks[dev], tuple(self.ids[i] for i in idx.tolist()))

    def batch(self, idx: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``idx`` as model input: x float32 ``(b, c, h, w)`` in [0, 1], y int64 ``(b, h, w)``."""
        dev = _index(idx).to(self.device)
        return to_input(self.images[dev]), self.masks[dev].long()

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, idx)``: x float32 ``(b, c, h, w)`` in [0, 1], y int64 ``(b, h, w)``,
        idx int64 ``(b,)`` dataset indices (on the CPU). x and y are on the data's device.

        Args:
            batch_size: samples per batch.
            shuffle: random order (``torch.randperm`` drawn from ``generator``).
            generator: makes the order reproducible.
            drop_last: skip a final batch smaller than ``batch_size``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        n = len(self)
        if shuffle:
            where = generator.device if generator is not None else "cpu"
            order = torch.randperm(n, generator=generator, device=where).cpu()
        else:
            order = torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            x, y = self.batch(idx)
            yield x, y, idx


def _index(indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(indices, torch.Tensor):
        return indices.detach().to("cpu", torch.int64).reshape(-1)
    return torch.from_numpy(np.asarray(indices, dtype=np.int64).reshape(-1))


def _from_numpy(images: np.ndarray, masks: np.ndarray, ids: Sequence[str], grey: bool) -> SegmentationData:
    if grey:
        images = grey_world(images)
    return SegmentationData(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(masks), tuple(ids))


def load_folder(
    path: str | Path,
    image_size: int,
    *,
    channels: str = "auto",
    num_classes: int = 1,
    grey_world: bool = False,
    cache: bool = True,
) -> SegmentationData:
    """Every pair of a data folder (``images/`` + ``masks/``), no split; for predict/evaluate.

    Args:
        path: the folder.
        image_size: square side (images bilinear, masks nearest).
        channels: "auto" (3 if any image has colour, else 1), "rgb" or "grey".
        num_classes: 1 for binary masks (0/255 or 0/1); k >= 2 for class-index masks.
        grey_world: apply grey-world colour normalisation to the images.
        cache: reuse decoded arrays cached under ``$PLSEARCH_CACHE_DIR``.

    Raises:
        DataError: one line naming the offending file and the fix.
    """
    from plsearch.data.volume import is_volume_folder

    if is_volume_folder(path):  # MSD / nnU-Net layout: 3D volumes
        from plsearch.data.volume_data import load_volume_folder

        return load_volume_folder(path, image_size, num_classes=num_classes, cache=cache)  # type: ignore[return-value]
    arr = read_folder(path, image_size, channels=channels, num_classes=num_classes, cache=cache)
    return _from_numpy(arr.images, arr.masks, arr.ids, grey_world)


def check_foreground(masks: np.ndarray | torch.Tensor, where: Path, pixels: str = "pixel") -> None:
    """Refuse a data set whose masks hold no foreground at all: it would train to Dice 0 without a word.

    ``where``: the masks' folder (``masks/``, ``labelsTr/``), named in the one-line DataError.
    """
    if not bool(masks.any()):
        raise DataError(
            f"no mask in {where} holds any foreground (every {pixels} of every mask is 0), so a model would learn "
            "only background (Dice 0); mark the objects in the masks (255 or class indices 1..k-1, one channel)"
        )


@dataclass(frozen=True)
class DataHeader:
    """What a data folder's file headers tell before anything is decoded (``gate.resolve(data=...)``)."""

    channels: int
    spatial_dims: int


def peek(cfg: DataConfig) -> DataHeader | None:
    """The channels and dims of a volume folder from its file headers, nothing decoded (so that checks that
    need them, the memory check included, run before the data is loaded); None for 2D folders and the
    synthetic set, whose channel count comes from decoding."""
    from plsearch.data.volume import is_volume_folder, volume_channels

    root = Path(cfg.root).expanduser()
    if not cfg.root or not is_volume_folder(root):
        return None
    return DataHeader(channels=volume_channels(root), spatial_dims=3)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded random train/val/test indices of ``n`` samples (disjoint, each sorted).

    A non-zero fraction gets at least one sample when ``n`` allows; train keeps at least one.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)

    def count(frac: float) -> int:
        return 0 if frac <= 0 else max(1, int(round(n * frac)))

    n_test = min(count(test_fraction), max(0, n - 1))
    n_val = min(count(val_fraction), max(0, n - 1 - n_test))
    return {
        "test": np.sort(perm[:n_test]),
        "val": np.sort(perm[n_test : n_test + n_val]),
        "train": np.sort(perm[n_test + n_val :]),
    }


def _find_split_csv(cfg: DataConfig, root: Path) -> Path | None:
    if cfg.split_csv:
        p = Path(cfg.split_csv).expanduser()
        p = p if p.is_absolute() or p.exists() else root / p
        if not p.is_file():
            raise DataError(f"split file {p} does not exist; set data.split_csv to an id,split CSV or leave it empty")
        return p
    found = sorted(root.glob("split*.csv"))
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise DataError(f"{root} holds several split files ({names}); choose one with data.split_csv")
    return found[0] if found else None


def _read_split_csv(path: Path, ids: Sequence[str], images: str = "images") -> dict[str, list[int]]:
    pos = {i: k for k, i in enumerate(ids)}
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"id", "split"} <= {h.strip() for h in reader.fieldnames}:
                raise DataError(f"split file {path} needs an 'id,split' header; got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                sid, split = row["id"], row["split"].lower()
                if split not in SPLITS:
                    raise DataError(
                        f"split file {path} line {line}: split {row['split']!r} is not one of {list(SPLITS)}"
                    )
                if sid not in pos:
                    bare = sid.split(".")[0]  # hippocampus_001.nii.gz, img.png: a file name, not an id
                    fix = (
                        f"write the id {bare!r}" if bare != sid and bare in pos else "remove the line or add the image"
                    )
                    raise DataError(f"split file {path} line {line}: id {sid!r} has no image in {images}; {fix}")
                if sid in seen:
                    raise DataError(f"split file {path} line {line}: id {sid!r} is listed twice; keep one line per id")
                seen.add(sid)
                out[split].append(pos[sid])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read split file {path} ({e}); fix or remove it") from None
    if len(seen) < len(ids):
        log.warning("%s lists %d of %d ids; the other %d are not used", path, len(seen), len(ids), len(ids) - len(seen))
    if not out["train"]:
        raise DataError(f"split file {path} puts no id in 'train'; mark some ids as train")
    return out


def _split(
    cfg: DataConfig, n: int, root: Path | None, ids: Sequence[str], images: str = "images"
) -> dict[str, np.ndarray]:
    """Indices of each split; ``images``: the folder the ids come from (``imagesTr`` for volumes), for messages."""
    csv_path = _find_split_csv(cfg, root) if root is not None else None
    if csv_path is None:
        return split_indices(n, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    log.info("using split file %s", csv_path)
    parts = _read_split_csv(csv_path, ids, str(root / images) if root is not None else images)
    split = {s: np.sort(np.asarray(v, dtype=np.int64)) for s, v in parts.items()}
    if not parts["val"] and cfg.val_fraction > 0:  # train/test only (the shipped CSVs): carve val out of train
        train = split["train"]
        sub = split_indices(len(train), cfg.val_fraction, 0.0, cfg.seed)
        split["train"], split["val"] = train[sub["train"]], train[sub["val"]]
    if not parts["test"]:
        log.warning("split file %s has no 'test' ids; the test split is empty", csv_path)
    return split


def load_splits(cfg: DataConfig, num_classes: int = 1) -> dict[str, SegmentationData]:
    """Train/val/test data for a run.

    ``cfg.root == ""``: the synthetic set (``cfg.synthetic_count`` images). Otherwise the folder
    ``cfg.root``, split by ``cfg.split_csv`` or the one ``split*.csv`` in the folder (``id,split``
    with train/val/test; without val, val is carved out of train by ``cfg.val_fraction``), else by
    a seeded random split with ``cfg.val_fraction`` / ``cfg.test_fraction``.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}`` (a split may be empty when its fraction is 0).

    Raises:
        DataError: one line naming the offending file and the fix.
    """
    if not cfg.root:
        from plsearch.data.synthetic import make_synthetic  # synthetic imports this module

        channels = 1 if cfg.channels == "grey" else 3
        data = make_synthetic(cfg.synthetic_count, cfg.image_size, cfg.seed, channels=channels)
        if cfg.grey_world:
            data = _from_numpy(data.images.numpy(), data.masks.numpy(), data.ids, True)
        root = None
    else:
        root = Path(cfg.root).expanduser()
        from plsearch.data.volume import is_volume_folder

        if is_volume_folder(root):  # MSD / nnU-Net layout: 3D volumes (plsearch.data.volume_data)
            from plsearch.data.volume_data import load_volume_splits

            return load_volume_splits(cfg, num_classes=num_classes)  # type: ignore[return-value]
        data = load_folder(
            root,
            cfg.image_size,
            channels=cfg.channels,
            num_classes=num_classes,
            grey_world=cfg.grey_world,
            cache=cfg.cache,
        )
        check_foreground(data.masks, root / "masks")
    split = _split(cfg, len(data), root, data.ids)
    out = {s: data.subset(split[s]) for s in SPLITS}
    log.info("splits: %s", ", ".join(f"{s} {len(out[s])}" for s in SPLITS))
    return out
