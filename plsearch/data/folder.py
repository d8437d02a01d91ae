"""The ``folder`` data format: an ``images/`` + ``masks/`` folder of 2D images; list and pair, decode, validate, cache.

A data folder holds ``images/<id>.<ext>`` and ``masks/<id>.<ext>`` (PNG, JPEG, BMP, TIFF: ``FolderFormat.suffixes``).
Every pair is checked up front; a problem raises a one-line :class:`DataError` naming the file and the fix.
Decoded, resized arrays are cached as an ``.npz`` under ``$PLSEARCH_CACHE_DIR`` (default
``~/.cache/plsearch``), never inside the data folder, which may be read-only. :data:`FORMAT` is the format
(:mod:`plsearch.data.formats`), the default for a folder no other format claims.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from plsearch.config.schema import DataConfig
from plsearch.data.formats import DataFormat, example_samples
from plsearch.data.splits import DataError, SegmentationData

__all__ = [
    "FORMAT",
    "DataError",
    "FolderArrays",
    "FolderFormat",
    "cache_dir",
    "check_decode_memory",
    "check_mask_values",
    "grey_world",
    "list_pairs",
    "read_folder",
    "read_image",
    "to_channels",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when the decoding below changes what lands in the cache (2: EXIF orientation)
_LUMA = np.array([299, 587, 114], dtype=np.uint32)  # Pillow's RGB -> L weights (per mille)


@dataclass(frozen=True)
class FolderArrays:
    """What a folder decodes to before splitting; channel mode and mask mapping already applied.

    Attributes:
        ids: sorted sample ids (file stems).
        images: uint8 ``(n, c, s, s)``.
        masks: uint8 ``(n, s, s)`` class indices.
    """

    ids: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray


def cache_dir() -> Path:
    """Where decoded arrays are cached: ``$PLSEARCH_CACHE_DIR`` or ``~/.cache/plsearch``."""
    return Path(os.environ.get("PLSEARCH_CACHE_DIR") or Path.home() / ".cache" / "plsearch")


def _list(folder: Path, kind: str, root: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(
            f"{root} has no {kind}/ folder; put images in {root}/images/<id>.png and masks in {root}/masks/<id>.png"
        )
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in FolderFormat.suffixes or not p.is_file():
            continue
        if p.stem in files:
            raise DataError(f"{files[p.stem]} and {p} share the id {p.stem!r}; keep one file per id in {kind}/")
        files[p.stem] = p
    return files


def list_pairs(root: str | Path) -> list[tuple[str, Path, Path]]:
    """Pair ``images/<id>.*`` with ``masks/<id>.*``; ``[(id, image, mask), ...]`` sorted by id."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data folder {root} does not exist; set data.root to a folder holding images/ and masks/ "
            "(or imagesTr/ and labelsTr/ for 3D volumes)"
        )
    images = _list(root / "images", "images", root)
    masks = _list(root / "masks", "masks", root)
    if not images:
        raise DataError(
            f"{root}/images holds no image files ({', '.join(FolderFormat.suffixes)}); "
            f"put images in {root}/images/<id>.png"
        )
    for i, p in images.items():
        if i not in masks:
            raise DataError(f"image {p} has no mask (expected {root}/masks/{i}.png); add the mask or remove the image")
    for i, p in masks.items():
        if i not in images:
            raise DataError(f"mask {p} has no image (expected {root}/images/{i}.png); add the image or remove the mask")
    return [(i, images[i], masks[i]) for i in sorted(images)]


def _open(path: Path, what: str) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()  # decode now so that a truncated file fails here, not later
        # a camera JPEG stores its pixels unrotated plus an EXIF orientation: show them as viewers do,
        # so that an image and a mask drawn over it line up (no tag: unchanged)
        ImageOps.exif_transpose(im, in_place=True)
        return im
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"cannot read {what} {path} ({reason}); replace or remove the file") from None


def _image_array(im: Image.Image, size: int | None) -> np.ndarray:
    """Pillow image -> uint8 ``(1 | 3, h, w)``, alpha dropped, 16-bit and float scaled to 0..255."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float32)
        top = float(a.max()) if a.size else 0.0
        a = a * (255.0 / top) if top > 255 else a
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    elif im.mode in ("1", "LA", "L"):
        im = im.convert("L")
    elif im.mode != "RGB":
        im = im.convert("RGB")  # RGBA, P, CMYK, YCbCr; RGBA -> RGB drops alpha
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(..., c, h, w)`` with c in {1, 3} -> ``channels`` (grey = Pillow's luminance)."""
    c = images.shape[-3]
    if c == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-3)
    luma = np.tensordot(images.astype(np.uint32), _LUMA, axes=([-3], [0]))
    return ((luma + 500) // 1000).astype(np.uint8)[..., None, :, :]


def grey_world(images: np.ndarray) -> np.ndarray:
    """Grey-world colour constancy (the paper's colour normalisation), per image.

    Each channel is scaled so that its mean equals the mean over all channels.

    Args:
        images: uint8 ``(c, h, w)`` or ``(n, c, h, w)``; one channel is returned unchanged.
    """
    if images.shape[-3] == 1 or images.size == 0:
        return images
    a = images.astype(np.float32)
    means = a.mean(axis=(-2, -1), keepdims=True)  # (..., c, 1, 1)
    gain = means.mean(axis=-3, keepdims=True) / np.maximum(means, 1e-3)
    return np.clip(np.rint(a * gain), 0, 255).astype(np.uint8)


def read_image(path: str | Path, image_size: int | None, channels: int | str = "auto") -> np.ndarray:
    """Decode one image to uint8 ``(channels, s, s)`` the way the folder loader does.

    Args:
        path: image file (PNG, JPEG, BMP, TIFF).
        image_size: square side to resize to (bilinear); None keeps the file's size.
        channels: 1 / "grey", 3 / "rgb", or "auto" (the file's own: 3 if it has colour, else 1).
    """
    a = _image_array(_open(Path(path), "image"), image_size)
    want = {"grey": 1, "rgb": 3, 1: 1, 3: 3}.get(channels)  # type: ignore[call-overload]
    if want is None:
        if channels != "auto":
            raise ValueError(f"channels={channels!r} is not allowed; choose 1, 3, 'grey', 'rgb' or 'auto'")
        want = 3 if a.shape[0] == 3 and not _is_grey(a) else 1
    return to_channels(a, want)


def _is_grey(a: np.ndarray) -> bool:
    return a.shape[0] == 1 or bool((a[0] == a[1]).all() and (a[1] == a[2]).all())


def _decode_pair(image: Path, mask: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """One pair -> (image (c, s, s), mask (s, s), mask values present (256,) bool, has colour)."""
    im = _open(image, "image")
    mk = _open(mask, "mask")
    if im.size != mk.size:
        raise DataError(
            f"image {image} ({im.size[0]}x{im.size[1]}) and mask {mask} ({mk.size[0]}x{mk.size[1]}) "
            "differ in size; save the mask at the image's size"
        )
    img = _image_array(im, size)
    m = np.asarray(mk)
    alpha = m[..., -1] if m.ndim == 3 and mk.mode in ("LA", "PA", "RGBA") else None
    if alpha is not None and not m[..., :-1].any() and alpha.min() < alpha.max():  # never drop it silently
        raise DataError(
            f"mask {mask} holds its drawing only in the alpha channel (its {mk.mode[:-1]} channels are all 0); "
            "save masks as single-channel class indices (0/255 or 0..k-1), e.g. the alpha channel as a grey PNG"
        )
    if m.ndim == 3:  # RGB(A) mask: fine only if it is grey (alpha ignored)
        if m.shape[2] >= 3 and not ((m[..., 0] == m[..., 1]).all() and (m[..., 1] == m[..., 2]).all()):
            raise DataError(
                f"mask {mask} is a colour image; save masks as single-channel class indices (0/255 or 0..k-1)"
            )
        m = m[..., 0]
    if m.dtype == bool:
        m = m.astype(np.uint8)
    if m.size and (m.min() < 0 or m.max() > 255):
        raise DataError(
            f"mask {mask} has values up to {m.max()}; masks must hold values 0..255 (class indices or 0/255)"
        )
    m = m.astype(np.uint8, copy=False)
    present = np.bincount(m.ravel(), minlength=256) > 0
    if m.shape != (size, size):
        m = np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST))
    return img, m, present, not _is_grey(img)


def check_mask_values(present: np.ndarray, num_classes: int) -> str | None:
    """Why a mask with these values (``(256,)`` bool) does not fit ``num_classes``, or None."""
    values = np.flatnonzero(present)
    if num_classes == 1:
        if set(values) <= {0, 1} or set(values) <= {0, 255}:
            return None
        bad = [int(v) for v in values if v not in (0, 1, 255)] or [int(v) for v in values]
        return (
            f"has values {bad[:5]}{' ...' if len(bad) > 5 else ''} but binary masks hold only 0/255 or 0/1; "
            "re-save the mask as 0/255 (or set model.num_classes for a multi-class mask)"
        )
    if num_classes == 2 and set(values) <= {0, 255}:
        return None
    if values.size and values.max() >= num_classes:
        return (
            f"holds class index {int(values.max())} but num_classes={num_classes} (indices 0..{num_classes - 1}); "
            "raise model.num_classes or fix the mask"
        )
    return None


def check_decode_memory(root: Path, what: str, need: Callable[[int], int], size: int, shown: str = "{} px") -> int:
    """Refuse, before anything is decoded or cached, a size whose decoded arrays cannot fit in RAM.

    ``need(side)``: bytes that loading the data at ``side`` holds at its peak (from file counts and
    headers). Raises a one-line :class:`DataError` with the figure and the largest side that fits;
    unknown free memory refuses nothing; ``shown`` formats the size. Returns ``need(size)``.
    """
    from plsearch.graph.memory import available_bytes, fmt_bytes

    total = need(size)
    have = available_bytes("cpu")
    if have is None or total <= have:
        return total
    lo, hi = 0, size - 1  # the largest side that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= have else (lo, mid - 1)
    fix = f"use --image-size {lo} or less (data.image_size)" if lo else "use fewer or smaller files"
    raise DataError(
        f"{root}: loading {what} at {shown.format(size)} needs about {fmt_bytes(total)} of RAM, "
        f"{fmt_bytes(have)} available; {fix}"
    )


def _cache_key(root: Path, pairs: list[tuple[str, Path, Path]], size: int) -> str:
    stats = []
    for _, img, msk in pairs:
        for p in (img, msk):
            st = p.stat()
            stats.append((p.name, st.st_size, st.st_mtime_ns))
    blob = json.dumps([CACHE_VERSION, str(root.resolve()), size, stats])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _decode_all(pairs: list[tuple[str, Path, Path]], size: int) -> dict[str, np.ndarray]:
    workers = min(8, max(2, (os.cpu_count() or 2) * 2))  # Pillow releases the GIL while decoding
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_decode_pair, img, msk, size) for _, img, msk in pairs]
        results, errors = [], []
        for f in futures:
            try:
                results.append(f.result())
            except DataError as e:
                errors.append(str(e))
    if errors:
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise DataError(errors[0] + more)
    colour = np.array([r[3] for r in results], dtype=bool)
    c = 3 if colour.any() else 1
    return {
        "images": np.stack([to_channels(r[0], c) for r in results]),
        "masks": np.stack([r[1] for r in results]),
        "present": np.stack([r[2] for r in results]),
        "colour": colour,
        "ids": np.array([i for i, _, _ in pairs]),
    }


def _load_cached(path: Path, ids: list[str]) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("images", "masks", "present", "colour", "ids")}
    except (OSError, ValueError, KeyError) as e:
        log.warning("ignoring unreadable cache %s (%s)", path, e)
        return None
    return arrays if arrays["ids"].tolist() == ids else None


def _save_cached(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp.npz")  # unique per writer
        np.savez(tmp, **arrays)  # uncompressed: loading is a memcpy, not a decode
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not write the data cache %s (%s); set PLSEARCH_CACHE_DIR to a writable folder", path, e)


def read_folder(
    root: str | Path, image_size: int, *, channels: str = "auto", num_classes: int = 1, cache: bool = True
) -> FolderArrays:
    """Decode every pair of a data folder (validated, resized, cached).

    Args:
        root: folder holding ``images/`` and ``masks/``.
        image_size: square side (images bilinear, masks nearest).
        channels: "auto" (3 if any image has colour, else 1), "rgb" or "grey".
        num_classes: 1 = binary masks (0/255 or 0/1 -> 0/1); k >= 2 = class indices 0..k-1.
        cache: reuse/write decoded arrays under :func:`cache_dir`.
    """
    if channels not in ("auto", "rgb", "grey"):
        raise ValueError(f"channels={channels!r} is not allowed; choose one of ['auto', 'rgb', 'grey']")
    root = Path(root).expanduser()
    pairs = list_pairs(root)
    ids = [i for i, _, _ in pairs]
    # up to 3 image channels and a mask per pair, twice (the decoded list and the stacked array)
    check_decode_memory(root, f"{len(pairs)} images", lambda s: 2 * len(pairs) * 4 * s * s, image_size)
    t0 = time.perf_counter()
    arrays = None
    if cache:
        cfile = cache_dir() / "data" / f"{_cache_key(root, pairs, image_size)}.npz"
        arrays = _load_cached(cfile, ids) if cfile.is_file() else None
    hit = arrays is not None
    if arrays is None:
        arrays = _decode_all(pairs, image_size)
        if cache:
            _save_cached(cfile, arrays)
    log.info(
        "%s: %d pairs at %d px in %.2fs (%s)",
        root,
        len(ids),
        image_size,
        time.perf_counter() - t0,
        "cache hit" if hit else "decoded",
    )
    for k, (_, _, msk) in enumerate(pairs):
        problem = check_mask_values(arrays["present"][k], num_classes)
        if problem:
            hint = " (JPEG is lossy: save masks as PNG)" if msk.suffix.lower() in (".jpg", ".jpeg") else ""
            raise DataError(f"mask {msk} {problem}{hint}")
    masks = arrays["masks"]
    if num_classes <= 2:  # 0/255 or 0/1 -> 0/1; more classes: indices already (checked above)
        masks = (masks > 0).astype(np.uint8)
    want = {"rgb": 3, "grey": 1, "auto": arrays["images"].shape[1]}[channels]
    return FolderArrays(tuple(ids), to_channels(arrays["images"], want), masks)


class FolderFormat(DataFormat):
    """``images/<id>.<ext>`` + ``masks/<id>.<ext>``: 2D images and their masks, PNG masks out."""

    name = "folder"
    spatial_dims = 2
    suffixes = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
    images_dir = "images"
    masks_dir = "masks"
    mask_suffix = ".png"

    def detect(self, root: Path) -> bool:
        return (root / "images").is_dir() or (root / "masks").is_dir()

    def ids(self, cfg: DataConfig) -> list[str]:
        return [i for i, _, _ in list_pairs(cfg.root)]

    def example(self, folder: Path) -> str:
        for sub in ("images", "masks"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for sid, image, mask in example_samples(2):
            Image.fromarray(image).save(folder / "images" / f"{sid}.png")
            Image.fromarray(mask * np.uint8(255)).save(folder / "masks" / f"{sid}.png")
        return str(folder)

    def load(self, cfg: DataConfig, num_classes: int | None = None) -> SegmentationData:
        arr = read_folder(
            cfg.root,
            cfg.image_size,
            channels=cfg.channels,
            num_classes=1 if num_classes is None else num_classes,
            cache=cfg.cache,
        )
        images = grey_world(arr.images) if cfg.grey_world else arr.images
        return SegmentationData(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(arr.masks), arr.ids)

    def read(self, path: Path, channels: int | str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
        return read_image(path, None, channels), {}

    def check(self, path: Path) -> None:
        _open(Path(path), "image").close()


FORMAT = FolderFormat()
