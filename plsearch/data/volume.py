"""The ``msd`` data format: 3D volumes in the Medical Segmentation Decathlon / nnU-Net raw layout (NIfTI, nibabel).

A volume folder holds ``imagesTr/<case>.nii.gz`` (MSD; a 4D file for several modalities) or
``imagesTr/<case>_0000.nii.gz`` ... (nnU-Net v2, one file per channel), ``labelsTr/<case>.nii.gz``
and ``dataset.json`` (label names: MSD ``{"0": "background", ...}`` or nnU-Net ``{"background": 0}``),
with an optional ``split*.csv`` (``id,split``) as for 2D folders.

Every case is checked up front and a problem raises a one-line :class:`~plsearch.data.folder.DataError`
naming the file and the fix: image without label, shape or affine mismatch, non-integer or unknown
label values, unreadable files. Images are z-scored per volume (intensities differ by four orders
of magnitude between scans), then resized (trilinear; labels nearest) or centre padded/cropped to a
cube of ``image_size`` (``data.volume_fit``: ``resize`` or ``pad_crop``); the voxel spacing of the
stored grid is kept per volume, so distances in mm stay right. :data:`FORMAT` is the format
(:mod:`plsearch.data.formats`): it loads a folder as one ``SegmentationData`` (float volumes, with each
volume's spacing, shape and affine), which :func:`plsearch.data.dataset.load_splits` splits as any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from plsearch.config.schema import DataConfig
from plsearch.data.folder import cache_dir, check_decode_memory
from plsearch.data.formats import DataFormat, DataHeader, example_samples, files_with
from plsearch.data.splits import DataError, SegmentationData

__all__ = [
    "FITS",
    "FORMAT",
    "Case",
    "MsdFormat",
    "case_sizes",
    "check_volume_memory",
    "fit_volume",
    "is_volume_folder",
    "label_names",
    "list_cases",
    "load_volume_folder",
    "read_case",
    "read_volume",
    "read_volume_folder",
    "volume_channels",
    "write_nifti",
    "zscore",
]

log = logging.getLogger(__name__)

FITS = ("resize", "pad_crop")  # data.volume_fit
CACHE_VERSION = 1
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One training case: its id, image file(s) (one per channel) and label file."""

    id: str
    images: tuple[Path, ...]
    label: Path


def _stem(p: Path) -> str | None:
    for s in MsdFormat.suffixes:
        if p.name.endswith(s) and not p.name.startswith("."):
            return p.name[: -len(s)]
    return None


def is_volume_folder(root: str | Path) -> bool:
    """True for a folder in the MSD / nnU-Net raw layout: ``imagesTr/`` or ``labelsTr/`` (a folder with
    only one of them is still one, so :func:`list_cases` can name the missing half, not ``images/``)."""
    root = Path(root).expanduser()
    return (root / "imagesTr").is_dir() or (root / "labelsTr").is_dir()


def label_names(root: str | Path) -> dict[int, str]:
    """``{value: name}`` from ``dataset.json`` (MSD or nnU-Net v2 style); empty without the file."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
        labels = meta["labels"]
        if not isinstance(labels, dict) or not labels:
            raise KeyError("labels")
        if all(str(k).lstrip("-").isdigit() for k in labels):  # MSD: {"0": "background"}
            return {int(k): str(v) for k, v in labels.items()}
        out: dict[int, str] = {}
        for name, value in labels.items():  # nnU-Net v2: {"background": 0}; regions (lists) not supported
            if not isinstance(value, int):
                raise DataError(f"{path}: label {name!r} is {value!r}; plsearch reads integer labels, not regions")
            out[value] = str(name)
        return out
    except (OSError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(
            f"cannot read the labels of {path} ({type(e).__name__}: {e}); "
            'give it a "labels" map like {"0": "background", "1": "tumour"}'
        ) from None


def list_cases(root: str | Path) -> list[Case]:
    """Pair ``imagesTr/`` with ``labelsTr/`` by case id (sorted); one-line DataError on any mismatch."""
    root = Path(root).expanduser()
    has_images, has_labels = (root / "imagesTr").is_dir(), (root / "labelsTr").is_dir()
    if not has_images and not has_labels:
        raise DataError(
            f"{root} has no imagesTr/ and labelsTr/ folders; put volumes in {root}/imagesTr/<case>.nii.gz "
            f"and labels in {root}/labelsTr/<case>.nii.gz"
        )
    if not has_labels:
        raise DataError(f"{root} has imagesTr/ but no labelsTr/ folder; put labels in {root}/labelsTr/<case>.nii.gz")
    if not has_images:
        raise DataError(f"{root} has labelsTr/ but no imagesTr/ folder; put volumes in {root}/imagesTr/<case>.nii.gz")
    images: dict[str, dict[int, Path]] = {}
    files: dict[str, list[Path]] = {}  # every file of a case: c.nii.gz beside c_0000.nii.gz is ambiguous
    for p in sorted((root / "imagesTr").iterdir()):
        stem = _stem(p)
        if stem is None:
            continue
        m = _CHANNEL.match(stem)
        case, ch = (m["case"], int(m["ch"])) if m else (stem, 0)
        images.setdefault(case, {})[ch] = p
        files.setdefault(case, []).append(p)
    label_files: dict[str, list[Path]] = {}
    for p in sorted((root / "labelsTr").iterdir()):
        if (stem := _stem(p)) is not None:
            label_files.setdefault(stem, []).append(p)
    for kind, found in (("imagesTr", files), ("labelsTr", label_files)):
        for case, paths in sorted(found.items()):
            stems = [_stem(p) for p in paths]  # several channel files c_0000, c_0001, ... are one case
            if len(paths) > 1 and (case in stems or len(set(stems)) < len(stems)):
                names = ", ".join(p.name for p in paths)
                raise DataError(
                    f"case {case!r} has several files in {root}/{kind} ({names}); keep one per case "
                    f"({case}.nii.gz, or one per channel: {case}_0000.nii.gz, {case}_0001.nii.gz, ...)"
                )
    labels = {case: paths[0] for case, paths in label_files.items()}
    if not images:
        raise DataError(f"{root}/imagesTr holds no .nii.gz files; put volumes in {root}/imagesTr/<case>.nii.gz")
    cases = []
    for case, chans in sorted(images.items()):
        if case not in labels:
            raise DataError(
                f"image {chans[min(chans)]} has no label (expected {root}/labelsTr/{case}.nii.gz); "
                "add the label or remove the image"
            )
        if sorted(chans) != list(range(len(chans))):
            raise DataError(
                f"case {case!r} has channel files {sorted(chans)} in imagesTr; number them "
                f"{case}_0000, {case}_0001, ... without gaps"
            )
        cases.append(Case(case, tuple(chans[c] for c in sorted(chans)), labels[case]))
    for case, p in labels.items():
        if case not in images:
            raise DataError(
                f"label {p} has no image (expected {root}/imagesTr/{case}.nii.gz); add the image or remove the label"
            )
    counts = {len(c.images) for c in cases}
    if len(counts) > 1:
        raise DataError(
            f"cases in {root}/imagesTr have different channel counts {sorted(counts)}; "
            "give every case the same channels"
        )
    return cases


def _load(path: Path, what: str) -> Any:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as e:  # noqa: BLE001 - nibabel raises ImageFileError, OSError, EOFError, zlib errors... on bad files
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"cannot read {what} {path} ({reason}); replace or remove the file") from None
    return img, data


def _header_shape(path: Path, what: str) -> tuple[int, ...]:
    """A file's array shape from its header alone: no voxel is decoded."""
    import nibabel as nib

    try:
        return tuple(int(n) for n in nib.load(str(path)).shape)
    except Exception as e:  # noqa: BLE001 - as in _load
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"cannot read {what} {path} ({reason}); replace or remove the file") from None


def case_sizes(cases: list[Case]) -> list[tuple[int, int]]:
    """``(channels, voxels)`` of each case, from the file headers (nothing decoded)."""
    out = []
    for case in cases:
        channels, voxels = 0, 0
        for f in case.images:
            shape = _header_shape(f, "image")
            channels += shape[3] if len(shape) == 4 else 1
            voxels = max(voxels, math.prod(shape[:3]))
        out.append((channels, voxels))
    return out


def volume_channels(root: str | Path) -> int:
    """Image channels of a volume folder, from the headers of its first case (nothing decoded)."""
    return case_sizes(list_cases(root)[:1])[0][0]


def _workers() -> int:
    return min(8, max(2, (os.cpu_count() or 2) * 2))  # zlib releases the GIL


def check_volume_memory(root: Path, cases: list[Case], size: int) -> int:
    """Refuse (one-line DataError), from the file headers and before anything is decoded or cached, a
    ``size`` whose decoded volumes cannot fit in RAM; returns the estimate in bytes.

    Loading holds every fitted volume (float32 channels + uint8 label) twice (the per-case list and the
    stacked array; later the full set and its splits), every z-scored file at its own size until all are
    fitted, and, per decoding thread, a case's raw, float32 and z-scored copies.
    """
    sizes = case_sizes(cases)
    per_voxel = sum(4 * c + 1 for c, _ in sizes)
    originals = sum((4 * c + 1) * v for c, v in sizes)
    reading = min(_workers(), len(sizes)) * max(3 * 4 * c * v for c, v in sizes)
    return check_decode_memory(
        root, f"{len(cases)} volumes", lambda s: 2 * per_voxel * s**3 + originals + reading, size, "{}^3"
    )


def zscore(volume: np.ndarray, slab_voxels: int = 1 << 20) -> np.ndarray:
    """Per-channel z-score over the whole volume ``(c, *spatial)``; a constant channel becomes 0.

    Statistics accumulate in float64 slab by slab and the result is written in float32, so a large
    volume needs one float32 output beside its input (numpy's ``std`` would make float64 copies of it).
    """
    v = volume.astype(np.float32, copy=False)
    out = np.empty(v.shape, dtype=np.float32)
    for c in range(v.shape[0]):
        flat = v[c].reshape(-1)
        n = flat.size
        mean = sum(float(flat[i : i + slab_voxels].sum(dtype=np.float64)) for i in range(0, n, slab_voxels)) / max(n, 1)
        sq = 0.0
        for i in range(0, n, slab_voxels):
            d = flat[i : i + slab_voxels].astype(np.float64) - mean
            sq += float(np.dot(d, d))
        std = (sq / max(n, 1)) ** 0.5
        np.subtract(v[c], np.float32(mean), out=out[c])
        out[c] /= np.float32(std if std > 0 else 1.0)
    return out


def read_volume(paths: str | Path | tuple[Path, ...] | list[Path]) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """One volume (one file, or one file per channel) -> (z-scored float32 ``(c, x, y, z)``, affine, spacing mm)."""
    raw, affine, spacing = read_raw_volume(paths)
    return zscore(raw), affine, spacing


def read_raw_volume(
    paths: str | Path | tuple[Path, ...] | list[Path],
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """:func:`read_volume` before the z-score: the file's intensities ``(c, x, y, z)`` (its dtype), affine, spacing."""
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    chans, affine, spacing, shape = [], None, None, None
    for f in files:
        img, a = _load(f, "image")
        if a.ndim == 4:  # MSD multi-modal: channels last
            a = np.moveaxis(a, -1, 0)
        elif a.ndim == 3:
            a = a[None]
        else:
            raise DataError(f"image {f} has shape {a.shape}; volumes must be 3D (x, y, z) or 4D (x, y, z, channels)")
        if not np.isfinite(a).all():
            raise DataError(f"image {f} holds NaN or infinite values; fix or remove the file")
        if shape is not None and a.shape[1:] != shape:
            raise DataError(
                f"channel file {f} has shape {a.shape[1:]} but {files[0]} has {shape}; "
                "save every channel of a case on the same grid"
            )
        shape, affine = a.shape[1:], img.affine if affine is None else affine
        spacing = spacing or tuple(float(z) for z in img.header.get_zooms()[:3])
        chans.append(a)
    return np.concatenate(chans), np.asarray(affine, dtype=np.float64), spacing  # type: ignore[return-value]


def read_case(case: Case, allowed: set[int] | None) -> dict[str, Any]:
    """Read and check one case: image ``(c, x, y, z)`` z-scored, integer labels, affine and spacing."""
    image, affine, spacing = read_volume(case.images)
    limg, lab = _load(case.label, "label")
    if lab.shape != image.shape[1:]:
        raise DataError(
            f"label {case.label} has shape {lab.shape} but image {case.images[0]} has "
            f"{image.shape[1:]}; save the label on the image's grid"
        )
    if not np.allclose(limg.affine, affine, atol=1e-3):
        raise DataError(
            f"label {case.label} and image {case.images[0]} have different affines (orientation or "
            "origin); resample the label onto the image's grid"
        )
    if np.issubdtype(lab.dtype, np.floating) and (not np.isfinite(lab).all() or (lab != np.round(lab)).any()):
        bad = lab[np.isfinite(lab) & (lab != np.round(lab))]
        raise DataError(
            f"label {case.label} holds non-integer values (e.g. {bad.flat[0] if bad.size else 'NaN'}); "
            "labels must be class indices"
        )
    values = {int(v) for v in np.unique(lab)}
    if allowed is not None and not values <= allowed:
        extra = sorted(values - allowed)
        raise DataError(
            f"label {case.label} holds values {extra[:5]} not named in dataset.json (labels "
            f"{sorted(allowed)}); fix the label or add the class to dataset.json"
        )
    if min(values) < 0 or max(values) > 255:
        raise DataError(f"label {case.label} holds values outside 0..255; labels must be class indices")
    return {"image": image, "label": lab.astype(np.uint8), "affine": affine, "spacing": spacing}


def fit_volume(
    image: np.ndarray, label: np.ndarray | None, size: int | tuple[int, int, int], fit: str = "resize"
) -> tuple[np.ndarray, np.ndarray | None, tuple[float, ...]]:
    """Bring ``image (c, *s)`` (and ``label (*s)``) to ``size``; returns them and the scale per axis.

    ``resize``: trilinear image, nearest labels; the scale is ``old / new`` (spacing grows by it).
    ``pad_crop``: centre pad (0, the z-scored mean; background label) or crop; the scale is 1.
    """
    import torch
    import torch.nn.functional as F

    if fit not in FITS:
        raise ValueError(f"fit={fit!r} is not one of {list(FITS)}")
    spatial = image.shape[1:]
    target = (size,) * len(spatial) if isinstance(size, int) else tuple(size)
    if fit == "resize":
        if tuple(spatial) == target:
            return image, label, (1.0,) * len(spatial)
        x = F.interpolate(
            torch.from_numpy(np.ascontiguousarray(image))[None], size=target, mode="trilinear", align_corners=False
        )[0].numpy()
        y = None
        if label is not None:
            y = (
                F.interpolate(torch.from_numpy(label)[None, None].float(), size=target, mode="nearest-exact")[0, 0]
                .to(torch.uint8)
                .numpy()
            )
        return x, y, tuple(s / t for s, t in zip(spatial, target))
    x, y = image, label
    for ax, (s, t) in enumerate(zip(spatial, target)):
        if s > t:  # crop the centre
            lo = (s - t) // 2
            x = np.take(x, range(lo, lo + t), axis=ax + 1)
            y = None if y is None else np.take(y, range(lo, lo + t), axis=ax)
        elif s < t:
            lo = (t - s) // 2
            pads = [(0, 0)] * x.ndim
            pads[ax + 1] = (lo, t - s - lo)
            x = np.pad(x, pads)
            y = None if y is None else np.pad(y, pads[1:])
    return np.ascontiguousarray(x), None if y is None else np.ascontiguousarray(y), (1.0,) * len(spatial)


def _cache_key(root: Path, cases: list[Case], size: int, fit: str) -> str:
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for c in cases for p in (*c.images, c.label)]
    blob = json.dumps([CACHE_VERSION, str(root.resolve()), size, fit, stats])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _decode(root: Path, cases: list[Case], size: int, fit: str) -> dict[str, np.ndarray]:
    names = label_names(root)
    allowed = set(names) if names else None
    images, labels, spacing, shapes, affines, errors = [], [], [], [], [], []

    def one(case: Case) -> tuple[dict[str, Any], tuple]:
        r = read_case(case, allowed)
        return r, fit_volume(r["image"], r["label"], size, fit)

    with ThreadPoolExecutor(_workers()) as pool:
        futures = [pool.submit(one, case) for case in cases]
    for f in futures:
        try:
            r, (x, y, scale) = f.result()
        except DataError as e:
            errors.append(str(e))
            continue
        images.append(x)
        labels.append(y)
        spacing.append([sp * sc for sp, sc in zip(r["spacing"], scale)])
        shapes.append(r["label"].shape)
        affines.append(r["affine"])
    if errors:
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise DataError(errors[0] + more)
    return {
        "images": np.stack(images),
        "masks": np.stack(labels),
        "spacing": np.array(spacing, dtype=np.float64),
        "shapes": np.array(shapes, dtype=np.int64),
        "affines": np.stack(affines),
        "ids": np.array([c.id for c in cases]),
    }


def read_volume_folder(
    root: str | Path, image_size: int, *, fit: str = "resize", cache: bool = True
) -> dict[str, np.ndarray]:
    """Decode, check and fit every case of a volume folder (cached under ``$PLSEARCH_CACHE_DIR``).

    Returns:
        ``images`` float32 ``(n, c, s, s, s)``, ``masks`` uint8 ``(n, s, s, s)``, ``spacing`` ``(n, 3)`` mm of
        the stored grid, ``shapes`` ``(n, 3)`` and ``affines`` ``(n, 4, 4)`` of the files, ``ids``.
    """
    if fit not in FITS:
        raise ValueError(f"fit={fit!r} is not one of {list(FITS)}")
    root = Path(root).expanduser()
    cases = list_cases(root)
    check_volume_memory(root, cases, image_size)  # from the headers: before any volume is decoded or cached
    t0, arrays = time.perf_counter(), None
    cfile = cache_dir() / "volumes" / f"{_cache_key(root, cases, image_size, fit)}.npz"
    if cache and cfile.is_file():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable cache %s (%s)", cfile, e)
    hit = arrays is not None
    if arrays is None:
        arrays = _decode(root, cases, image_size, fit)
        if cache:
            try:
                cfile.parent.mkdir(parents=True, exist_ok=True)
                tmp = cfile.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, **arrays)
                os.replace(tmp, cfile)
            except OSError as e:
                log.warning("could not write the volume cache %s (%s)", cfile, e)
    log.info(
        "%s: %d volumes at %d^3 (%s) in %.2fs (%s)",
        root,
        len(cases),
        image_size,
        fit,
        time.perf_counter() - t0,
        "cache hit" if hit else "decoded",
    )
    return arrays


def write_nifti(path: str | Path, labels: np.ndarray, affine: np.ndarray) -> Path:
    """Write a label volume ``(x, y, z)`` as NIfTI (uint8) with the input's ``affine``."""
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, str(path))
    return path


def load_volume_folder(
    path: str | Path, image_size: int, *, fit: str = "resize", num_classes: int | None = None, cache: bool = True
) -> SegmentationData:
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
    return SegmentationData(
        torch.from_numpy(a["images"]),
        torch.from_numpy(a["masks"]),
        tuple(a["ids"].tolist()),
        a["spacing"],
        a["shapes"],
        a["affines"],
        names,
    )


class MsdFormat(DataFormat):
    """``imagesTr/`` + ``labelsTr/`` NIfTI volumes (+ ``dataset.json``); NIfTI masks out with the input's affine."""

    name = "msd"
    spatial_dims = 3
    suffixes = (".nii.gz", ".nii")
    images_dir = "imagesTr"
    masks_dir = "labelsTr"
    mask_suffix = ""  # a mask keeps its volume's file name (case.nii.gz)

    def detect(self, root: Path) -> bool:
        return is_volume_folder(root)

    def ids(self, cfg: DataConfig) -> list[str]:
        return [c.id for c in list_cases(cfg.root)]

    def example(self, folder: Path) -> str:
        import nibabel as nib

        for sid, image, mask in example_samples(3, count=4, size=10):
            for sub, a in (("imagesTr", image.astype(np.float32)), ("labelsTr", mask)):
                (folder / sub).mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(a, np.eye(4)), str(folder / sub / f"{sid}.nii.gz"))
        (folder / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "object"}}))
        return str(folder)

    def load(self, cfg: DataConfig, num_classes: int | None = None) -> SegmentationData:
        return load_volume_folder(
            cfg.root, cfg.image_size, fit=cfg.volume_fit, num_classes=num_classes, cache=cfg.cache
        )

    def read(self, path: Path, channels: int | str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
        raw, affine, spacing = read_raw_volume(path)
        return raw.astype(np.float32, copy=False), {"affine": affine, "spacing": spacing}

    def inputs(self, folder: Path) -> list[Path]:
        """``imagesTs/`` (the test cases) if the folder has one, else ``imagesTr/``, else the folder itself."""
        sub = next((folder / s for s in ("imagesTs", "imagesTr") if (folder / s).is_dir()), folder)
        return files_with(sub, self.suffixes)

    def check(self, path: Path) -> None:
        _header_shape(Path(path), "volume")

    def write(self, path: Path, labels: np.ndarray, meta: Mapping[str, Any], *, binary: bool) -> Path:
        return write_nifti(path, labels, meta["affine"])

    def header(self, root: Path) -> DataHeader | None:
        return DataHeader(channels=volume_channels(root), spatial_dims=3)

    def class_names(self, root: Path) -> dict[int, str]:
        return label_names(root)


FORMAT = MsdFormat()
