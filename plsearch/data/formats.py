"""Data formats: one module per on-disk layout, each a :class:`DataFormat`, found in one registry.

A format says which data folders are its own (``detect``), lists and loads every sample of one (``ids``,
``load``: one :class:`~plsearch.data.splits.SegmentationData`, split afterwards by
:func:`~plsearch.data.splits.split_ids`, the same for every format), and reads and writes the single files
that predict and ``plsearch.Segmenter`` handle (``inputs``, ``check``, ``read``, ``write``). Its file
suffixes are declared once, as ``suffixes``. Built in:

- ``folder``: ``images/`` + ``masks/`` (PNG, JPEG, BMP, TIFF; :mod:`plsearch.data.folder`), the default;
- ``msd``: the Medical Segmentation Decathlon / nnU-Net layout, ``imagesTr/`` + ``labelsTr/`` NIfTI
  volumes (:mod:`plsearch.data.volume`);
- ``synthetic``: plsearch's own nuclei set, ``data.root: ""`` (:mod:`plsearch.data.synthetic`).

Which format a data root is: ``""`` is the synthetic set (``DataConfig.root``); a folder is the first format
whose ``detect`` claims it, plug-ins (by name) before ``msd`` and ``folder``; a folder no format claims goes
to ``folder``, whose loader names what is missing. Which format a file is: the one whose suffix it ends with
(the longest wins; ties in the same order), else ``folder`` (Pillow has a go).

A new format is one class in a module that a search space lists under ``imports:`` (or any module imported
first). Subclass :class:`DataFormat` to inherit the defaults (a paired ``images_dir``/``masks_dir`` layout,
PNG masks out); write ``detect``, ``load``, ``read`` and ``example``::

    from plsearch.data.formats import DataFormat, register_format

    @register_format("npy")
    class NpyPairs(DataFormat):
        spatial_dims = 2
        suffixes = (".npy",)
        images_dir, masks_dir = "x", "y"

        def detect(self, root): return (root / "x").is_dir() and (root / "y").is_dir()
        def load(self, cfg, num_classes=None): ...   # every sample: SegmentationData(images, masks, ids)
        def read(self, path, channels="auto"): ...   # one file: (uint8 (c, h, w) array, {})
        def example(self, folder): ...               # a few toy samples on disk; returns the root

``plsearch.testing.check_format("npy")`` checks it against the contract (tests/test_formats.py shows one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, TypeVar, runtime_checkable

import numpy as np

from plsearch.config.registry import Registry, RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.config.schema import DataConfig
    from plsearch.data.splits import SegmentationData

__all__ = [
    "BUILTIN_FORMATS",
    "DEFAULT_FORMAT",
    "FORMATS",
    "SYNTHETIC_FORMAT",
    "DataFormat",
    "DataHeader",
    "detect_format",
    "example_samples",
    "files_with",
    "format_for_file",
    "formats_in_order",
    "get_format",
    "list_formats",
    "register_format",
    "suffix_of",
]

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class DataHeader:
    """What a data folder's file headers tell before anything is decoded (``gate.resolve(data=...)``)."""

    channels: int
    spatial_dims: int


@runtime_checkable
class DataFormat(Protocol):
    """One on-disk data layout. The members without a body below have to be written; a class that subclasses
    ``DataFormat`` inherits the others (a paired ``images_dir`` / ``masks_dir`` layout, PNG masks out).

    Attributes:
        name: the registry name (``register_format`` sets it).
        spatial_dims: 2 (images) or 3 (volumes).
        suffixes: the endings of the files it reads, lower case (``".png"``, ``".nii.gz"``); ``()`` for none.
        images_dir, masks_dir: the sub-folders of a data folder holding images and masks (messages, inputs).
        mask_suffix: the suffix of the masks predict writes (``".png"``); ``""`` keeps the input's file name.
    """

    name: str
    spatial_dims: int
    suffixes: tuple[str, ...]
    images_dir: str = "images"
    masks_dir: str = "masks"
    mask_suffix: str = ".png"

    def detect(self, root: Path) -> bool:
        """True if the folder ``root`` is in this format (cheap: looks at folder names, reads no file)."""
        ...

    def load(self, cfg: DataConfig, num_classes: int | None = None) -> SegmentationData:
        """Every sample of ``cfg.root`` at ``cfg.image_size``, checked (no split: the caller splits).

        ``num_classes`` (None: not known) is what the masks must fit: 1 for binary masks (0/255 or 0/1,
        returned as 0/1), k >= 2 for class indices 0..k-1. Raises ``DataError``: one line, the file and the fix.
        """
        ...

    def read(self, path: Path, channels: int | str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
        """One input file as ``Segmenter.predict`` takes arrays, and what writing its mask needs.

        Returns ``(array, meta)``: 2D uint8 ``(c, h, w)`` (``channels``: 1 / "grey", 3 / "rgb" or "auto") or
        3D float32 raw intensities ``(c, d, h, w)`` (z-scored by the caller); ``meta`` goes to :meth:`write`.
        """
        ...

    def example(self, folder: Path) -> str:
        """Write a small data set in this format under ``folder`` (a few samples, each with foreground; e.g.
        from :func:`example_samples`) and return its ``data.root``: what ``plsearch.testing.check_format``
        checks the format on."""
        ...

    def ids(self, cfg: DataConfig) -> list[str]:
        """Every sample id of ``cfg.root`` in load order, nothing decoded (default: the stems of the files in
        ``images_dir`` that end with a suffix)."""
        folder = Path(cfg.root).expanduser() / self.images_dir
        return [_stem(p, self.suffixes) for p in files_with(folder, self.suffixes)]

    def inputs(self, folder: Path) -> list[Path]:
        """The files predict segments in ``folder`` (its ``images_dir`` when it has one), sorted."""
        sub = folder / self.images_dir
        return files_with(sub if sub.is_dir() else folder, self.suffixes)

    def check(self, path: Path) -> None:
        """Raise ``DataError`` unless ``path`` can be read (default: read it)."""
        self.read(path)

    def write(self, path: Path, labels: np.ndarray, meta: Mapping[str, Any], *, binary: bool) -> Path:
        """Write a predicted mask (uint8 class labels at the input's size) to ``path`` (default: a PNG, 0/255 when
        ``binary``); returns ``path``."""
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels * np.uint8(255) if binary else labels).save(path)
        return path

    def header(self, root: Path) -> DataHeader | None:
        """Channels and dims from the file headers, nothing decoded; None where decoding tells (default)."""
        return None

    def class_names(self, root: Path) -> dict[int, str]:
        """``{value: name}`` of the classes when the data folder says (default: ``{}``)."""
        return {}


# ----------------------------------------------------------------------------- the registry

BUILTIN_FORMATS = {  # in the order they are matched, after the plug-ins
    "msd": "plsearch.data.volume:FORMAT",
    "folder": "plsearch.data.folder:FORMAT",
    "synthetic": "plsearch.data.synthetic:FORMAT",
}
DEFAULT_FORMAT = "folder"  # a folder no format claims, and a file no suffix matches
SYNTHETIC_FORMAT = "synthetic"  # data.root "" (DataConfig): no folder to detect

FORMATS: Registry[DataFormat] = Registry("format", BUILTIN_FORMATS, what="a registered data format")


def register_format(name: str) -> Callable[[T], T]:
    """Class decorator: register an instance of the class as data format ``name`` (and set its ``name``)."""

    def deco(cls: T) -> T:
        if name in FORMATS:
            held = "built in" if name in BUILTIN_FORMATS else f"registered by {type(FORMATS.get(name)).__qualname__}"
            raise RegistryError(f"format {name!r} is {held}; choose another name")
        cls.name = name  # type: ignore[attr-defined]
        fmt = cls()
        if not isinstance(fmt, DataFormat):
            missing = [m for m in _MEMBERS if not hasattr(fmt, m)]
            raise RegistryError(f"format {name!r} ({cls.__qualname__}) lacks {missing}; subclass DataFormat")
        FORMATS.register(name, fmt)
        return cls

    return deco


_MEMBERS = (
    "name",
    "spatial_dims",
    "suffixes",
    "images_dir",
    "masks_dir",
    "mask_suffix",
    "detect",
    "load",
    "read",
    "example",
    "ids",
    "inputs",
    "check",
    "write",
    "header",
    "class_names",
)


def list_formats() -> list[str]:
    """Every registered format name; imports nothing heavy."""
    return FORMATS.names()


def get_format(name: str) -> DataFormat:
    """The format registered as ``name`` (imports a built-in's module on first use)."""
    return FORMATS.get(name)


def formats_in_order() -> list[DataFormat]:
    """Every format in the order folders and files are matched: plug-ins by name, then the built-ins."""
    plugins = [n for n in FORMATS.names() if n not in BUILTIN_FORMATS]
    return [get_format(n) for n in (*plugins, *BUILTIN_FORMATS)]


def detect_format(root: str | Path) -> DataFormat:
    """The format of a data root: ``""`` the synthetic set, a folder the first format that claims it, else
    ``folder`` (which names what the folder lacks)."""
    if not str(root):
        return get_format(SYNTHETIC_FORMAT)
    path = Path(root).expanduser()
    for fmt in formats_in_order():
        if fmt.detect(path):
            return fmt
    return get_format(DEFAULT_FORMAT)


def suffix_of(path: str | Path, suffixes: tuple[str, ...]) -> str | None:
    """The longest of ``suffixes`` that the file name ends with (case-insensitive), or None."""
    name = Path(path).name.lower()
    hits = [s for s in suffixes if name.endswith(s)]
    return max(hits, key=len) if hits else None


def format_for_file(path: str | Path) -> DataFormat:
    """The format that reads the file ``path``: the one with the longest matching suffix, else ``folder``."""
    best: tuple[int, DataFormat] | None = None
    for fmt in formats_in_order():
        hit = suffix_of(path, fmt.suffixes)
        if hit is not None and (best is None or len(hit) > best[0]):
            best = (len(hit), fmt)
    return best[1] if best is not None else get_format(DEFAULT_FORMAT)


def _stem(path: Path, suffixes: tuple[str, ...]) -> str:
    hit = suffix_of(path, suffixes)
    return path.name[: -len(hit)] if hit else path.stem


def files_with(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The plain, non-hidden files of ``folder`` ending with one of ``suffixes``, sorted; [] without the folder."""
    if not suffixes or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and suffix_of(p, suffixes) and p.is_file())


def example_samples(
    dims: int = 2, count: int = 6, size: int = 12, seed: int = 0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Toy samples for a format's ``example``: ``[(id, image, mask), ...]``, the image uint8 ``(size,) * dims``
    (noise, a brighter box), the mask uint8 0/1 (the box)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        image = rng.integers(0, 90, (size,) * dims, dtype=np.uint8)
        mask = np.zeros((size,) * dims, dtype=np.uint8)
        lo = rng.integers(1, size // 2, dims)
        box = tuple(slice(int(a), int(a) + size // 3) for a in lo)
        mask[box] = 1
        image[box] += 120
        out.append((f"ex_{i:03d}", image, mask))
    return out
