"""The data format contract: what loading, splitting, predict and ``Segmenter`` rely on from a registered format.

A format declares its members (:class:`plsearch.data.formats.DataFormat`), writes an example of itself
that it and only it is detected in, lists the example's ids without decoding, loads every sample as one
``SegmentationData`` of its dimensionality in that order (masks 0/1 with foreground, at the asked size),
splits through the one split contract (a split CSV of its ids is obeyed), routes its files to itself by
suffix, reads each as ``Segmenter`` takes arrays, refuses a broken file with a one-line ``DataError``, and
writes a mask where it is told to.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from plsearch.testing.common import require


def check_format(name: str, *, image_size: int = 16, folder: str | Path | None = None) -> None:
    """Check the data format registered as ``name`` against the contract; raises ``ContractError``.

    Args:
        image_size: the side the example is loaded at.
        folder: where the example is written (default: a temporary folder, removed afterwards).
    """
    if folder is None:
        with tempfile.TemporaryDirectory(prefix=f"plsearch-format-{name}-") as tmp:
            return check_format(name, image_size=image_size, folder=tmp)
    _check(name, image_size, Path(folder))


def _check(name: str, size: int, folder: Path) -> None:
    import numpy as np
    import torch

    from plsearch.config.schema import DataConfig
    from plsearch.data.dataset import load_splits
    from plsearch.data.formats import DataFormat, DataHeader, detect_format, format_for_file, get_format
    from plsearch.data.splits import DataError, SegmentationData
    from plsearch.infer.predict import mask_names

    fmt: Any = get_format(name)
    require(isinstance(fmt, DataFormat), f"format {name!r} lacks members of DataFormat; subclass it")
    require(fmt.name == name, f"format registered as {name!r} calls itself {fmt.name!r}")
    who = f"format {name!r}"
    dims = fmt.spatial_dims
    require(dims in (2, 3), f"{who}: spatial_dims={dims!r}, expected 2 or 3")
    require(
        isinstance(fmt.suffixes, tuple) and all(isinstance(s, str) and s.startswith(".") for s in fmt.suffixes),
        f"{who}: suffixes={fmt.suffixes!r} must be a tuple of file endings such as '.png'",
    )
    require(all(s == s.lower() for s in fmt.suffixes), f"{who}: suffixes {fmt.suffixes} must be lower case")
    require(
        fmt.mask_suffix == "" or str(fmt.mask_suffix).startswith("."),
        f"{who}: mask_suffix={fmt.mask_suffix!r} must be '' or a file ending such as '.png'",
    )
    for attr in ("images_dir", "masks_dir"):
        require(isinstance(getattr(fmt, attr), str), f"{who}: {attr} must be a folder name (str)")

    empty = folder / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    require(not fmt.detect(empty), f"{who} claims an empty folder; detect only folders in its own layout")
    root = fmt.example(folder / "example")
    require(isinstance(root, str), f"{who}: example() returned {root!r}, expected the data root (str)")
    found = detect_format(root)
    require(found is fmt, f"{who}: its example {root!r} is detected as format {found.name!r}")

    cfg = DataConfig(root=root, image_size=size, cache=False, synthetic_count=8, val_fraction=0.2, test_fraction=0.2)
    ids = fmt.ids(cfg)
    require(
        isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids),
        f"{who}: ids() gave {ids!r}; expected a list of distinct, non-empty ids",
    )
    data = fmt.load(cfg, 1)
    require(isinstance(data, SegmentationData), f"{who}: load() gave {type(data).__name__}, not SegmentationData")
    require(data.spatial_dims == dims, f"{who}: load() gave {data.spatial_dims}D data but spatial_dims={dims}")
    require(list(data.ids) == ids, f"{who}: load() holds ids {list(data.ids)[:4]}..., ids() says {ids[:4]}...")
    require(
        tuple(data.image_size) == (size,) * dims, f"{who}: loaded at {size} px, the data are {tuple(data.image_size)}"
    )
    values = set(torch.unique(data.masks).tolist())
    require(values == {0, 1}, f"{who}: binary masks load as {sorted(values)}, expected 0/1 with foreground")
    if dims == 2:
        x, _ = data.batch([0])
        require(0 <= float(x.min()) and float(x.max()) <= 1, f"{who}: 2D model input leaves [0, 1]")

    splits = load_splits(cfg)
    got = sorted(i for s in splits.values() for i in s.ids)
    require(got == sorted(ids), f"{who}: the splits hold {len(got)} ids, the data {len(ids)}")
    if cfg.root:  # a folder: the split file of its ids is obeyed
        csv = Path(cfg.root).expanduser() / "split.csv"
        csv.write_text("id,split\n" + "".join(f"{i},{'test' if k == 0 else 'train'}\n" for k, i in enumerate(ids)))
        try:
            by_csv = load_splits(cfg)
        finally:
            csv.unlink()
        require(by_csv["test"].ids == (ids[0],), f"{who}: split.csv puts {ids[0]!r} in test, load_splits did not")

    head = fmt.header(Path(cfg.root).expanduser())
    if head is not None:
        require(
            isinstance(head, DataHeader) and head.channels == data.channels and head.spatial_dims == dims,
            f"{who}: header() says {head}, the data have {data.channels} channels in {dims}D",
        )
    names = fmt.class_names(Path(cfg.root).expanduser())
    require(
        isinstance(names, dict) and all(isinstance(k, int) and isinstance(v, str) for k, v in names.items()),
        f"{who}: class_names() gave {names!r}; expected {{value: name}}",
    )

    files = fmt.inputs(Path(cfg.root).expanduser()) if cfg.root else []
    require(bool(files) == bool(fmt.suffixes), f"{who}: inputs() of its example gave {len(files)} files")
    for f in files[:2]:
        other = format_for_file(f)
        require(other is fmt, f"{who}: its file {f.name} goes to format {other.name!r} by suffix")
        fmt.check(f)
        a, meta = fmt.read(f, data.channels)
        a = np.asarray(a)
        require(a.ndim == dims + 1, f"{who}: read({f.name}) gave shape {a.shape}, expected (c, *spatial) {dims}D")
        require(a.shape[0] == data.channels, f"{who}: read({f.name}) gave {a.shape[0]} channels, load {data.channels}")
        right = a.dtype == np.uint8 if dims == 2 else np.issubdtype(a.dtype, np.floating)
        require(right, f"{who}: read({f.name}) gave {a.dtype}; 2D images are uint8, volumes float")
        labels = np.zeros(a.shape[1:], dtype=np.uint8)
        labels[(0,) * dims] = 1
        out = folder / "masks_out" / mask_names([f])[0]
        written = fmt.write(out, labels, meta, binary=True)
        require(Path(written) == out and out.is_file(), f"{who}: write() did not write {out}")
    if fmt.suffixes:
        broken = folder / f"broken{fmt.suffixes[0]}"
        broken.write_bytes(b"not a file of this format")
        try:
            fmt.check(broken)
            error: Exception | None = None
        except Exception as e:  # noqa: BLE001 - the contract is about which error
            error = e
        require(isinstance(error, DataError), f"{who}: check() of a broken file raised {error!r}, not a DataError")
        text = str(error)
        require("\n" not in text and ";" in text, f"{who}: check() of a broken file says {text!r}: one line; a fix")
