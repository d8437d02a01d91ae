"""One split contract for 2D images and 3D volumes: the in-memory type of a split, and how ids are split.

Every data format (:mod:`plsearch.data.formats`) loads all its samples as one :class:`SegmentationData`;
:func:`split_ids` then splits their ids into train/val/test the same way for every format: by
``data.split_csv`` or the folder's one ``split*.csv`` (``id,split``; without val ids, val is carved out of
train by ``data.val_fraction``), else by a seeded random split with ``data.val_fraction`` /
``data.test_fraction``. A data set is a few hundred images or a few dozen volumes, so a split lives in
memory (optionally on the GPU) and batches are plain indexing: no DataLoader, no workers.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from plsearch.config.schema import DataConfig

__all__ = [
    "SPLITS",
    "DataError",
    "SegmentationData",
    "check_foreground",
    "check_split_arrays",
    "find_split_csv",
    "split_ids",
    "split_indices",
    "to_input",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data folder, split file or image is unusable; the message names the file and the fix."""


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(b, c, h, w)`` -> float32 model input in [0, 1] (what ``batches`` yields)."""
    return images.float().div_(255.0)


def check_split_arrays(images: torch.Tensor, masks: torch.Tensor, ids: Sequence[str], *, spatial_dims: int) -> None:
    """The in-memory contract of a split, 2D or 3D: images uint8 ``(n, c, h, w)`` or float ``(n, c, d, h, w)``
    (volumes arrive z-scored), masks uint8 ``(n, *spatial)``, one id per sample, the same spatial shape.
    Raises ``ValueError`` naming the shapes."""
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
    """Images and masks of one split, in memory: 2D images and 3D volumes alike (one type, every format).

    Attributes:
        images: 2D: uint8 ``(n, c, h, w)`` (grey-world already applied when DataConfig.grey_world);
            3D: float32 ``(n, c, d, h, w)``, z-scored per volume.
        masks: uint8 ``(n, *spatial)`` class indices (binary: 0/1).
        ids: one id per sample (the file stem, or the case id).
        spacing: float64 ``(n, 3)``: mm per voxel of the stored grid (after resizing); None for 2D images.
        shapes: int64 ``(n, 3)``: each file's own grid; None for 2D images.
        affines: float64 ``(n, 4, 4)``: each file's affine; None for 2D images.
        class_names: ``{value: name}`` when the data say (dataset.json); may be empty.
    """

    images: torch.Tensor
    masks: torch.Tensor
    ids: tuple[str, ...]
    spacing: np.ndarray | None = None
    shapes: np.ndarray | None = None
    affines: np.ndarray | None = None
    class_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_split_arrays(self.images, self.masks, self.ids, spatial_dims=3 if self.images.dim() == 5 else 2)
        object.__setattr__(self, "ids", tuple(self.ids))
        for name in ("spacing", "shapes", "affines"):
            a = getattr(self, name)
            if a is not None and len(a) != len(self.ids):
                raise ValueError(f"{name} holds {len(a)} rows for {len(self.ids)} samples; give one per sample")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def spatial_dims(self) -> int:
        """2 (images) or 3 (volumes)."""
        return self.images.dim() - 2

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, ...]:
        """``(h, w)`` or ``(d, h, w)``."""
        return tuple(self.images.shape[2:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def _with(self, images: torch.Tensor, masks: torch.Tensor, idx: np.ndarray | None = None) -> SegmentationData:
        """The same kind of data holding ``images`` and ``masks``: the samples at ``idx`` (None: all)."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return a if a is None or idx is None else a[idx]

        ids = self.ids if idx is None else tuple(self.ids[i] for i in idx.tolist())
        return SegmentationData(
            images, masks, ids, pick(self.spacing), pick(self.shapes), pick(self.affines), self.class_names
        )

    def to(self, device: torch.device | str) -> SegmentationData:
        """The same data on ``device`` (a few hundred images fit on any GPU)."""
        return self._with(self.images.to(device), self.masks.to(device))

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> SegmentationData:
        """The samples at ``indices``, in that order."""
        idx = _index(indices)
        dev = idx.to(self.device)
        return self._with(self.images[dev], self.masks[dev], idx.numpy())

    def batch(self, idx: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``idx`` as model input: x float32 ``(b, c, *spatial)`` (uint8 images scaled to [0, 1], float
        volumes as stored), y int64 ``(b, *spatial)``."""
        dev = _index(idx).to(self.device)
        images = self.images[dev]
        return (to_input(images) if images.dtype == torch.uint8 else images.float()), self.masks[dev].long()

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, idx)`` as :meth:`batch` gives them, with idx int64 ``(b,)`` dataset indices (on the
        CPU). x and y are on the data's device.

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


def check_foreground(masks: np.ndarray | torch.Tensor, where: str | Path, pixels: str = "pixel") -> None:
    """Refuse a data set whose masks hold no foreground at all: it would train to Dice 0 without a word.

    ``where``: the masks' folder (``masks/``, ``labelsTr/``), named in the one-line DataError.
    """
    if not bool(masks.any()):
        raise DataError(
            f"no mask in {where} holds any foreground (every {pixels} of every mask is 0), so a model would learn "
            "only background (Dice 0); mark the objects in the masks (255 or class indices 1..k-1, one channel)"
        )


# ----------------------------------------------------------------------------- splitting ids


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


def find_split_csv(cfg: DataConfig, root: Path) -> Path | None:
    """The split file of ``root``: ``cfg.split_csv`` (relative to the working directory or ``root``), else the
    folder's one ``split*.csv``, else None. Several candidates, or a named file that is missing, raise DataError."""
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


def _read_split_csv(path: Path, ids: Sequence[str], images: str) -> dict[str, list[int]]:
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


def split_ids(
    cfg: DataConfig, ids: Sequence[str], root: Path | None = None, images_dir: str = "images"
) -> dict[str, np.ndarray]:
    """Indices into ``ids`` of each split (``{"train", "val", "test"}``, each sorted), for every format.

    Args:
        cfg: ``split_csv``, ``val_fraction``, ``test_fraction`` and ``seed`` say how.
        ids: every sample's id, in the data's order.
        root: the data folder whose ``split*.csv`` is looked for; None (the synthetic set) looks for none.
        images_dir: the sub-folder the ids come from (``imagesTr`` for volumes), named in messages.

    Raises:
        DataError: a split file that names an unknown id, an id twice, or no train id; one line with the fix.
    """
    csv_path = find_split_csv(cfg, root) if root is not None else None
    if csv_path is None:
        return split_indices(len(ids), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    log.info("using split file %s", csv_path)
    where = str(root / images_dir) if root is not None and images_dir else str(root)
    parts = _read_split_csv(csv_path, ids, where)
    split = {s: np.sort(np.asarray(v, dtype=np.int64)) for s, v in parts.items()}
    if not parts["val"] and cfg.val_fraction > 0:  # train/test only (the shipped CSVs): carve val out of train
        train = split["train"]
        sub = split_indices(len(train), cfg.val_fraction, 0.0, cfg.seed)
        split["train"], split["val"] = train[sub["train"]], train[sub["val"]]
    if not parts["test"]:
        log.warning("split file %s has no 'test' ids; the test split is empty", csv_path)
    return split
