"""Predict masks for image files and NIfTI volumes with a trained network (a checkpoint or a kept trial).

Images are segmented the way the network was trained (resized to its training size, logits resized
back: ``plsearch.Segmenter``), so a mask PNG matches its image pixel for pixel: 0/255 for binary
networks, the class index for multi-class ones. Volumes give a NIfTI label volume with the input's
affine. Which files a folder holds, how each is read and how its mask is written is the business of its
data format (:mod:`plsearch.data.formats`: ``inputs``, ``read``, ``write``, ``mask_suffix``). Run it from
the shell with ``python -m plsearch.predict --checkpoint RUN/best.pt --input DIR --out DIR`` (or
``--trial results/NAME:12``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["list_images", "list_inputs", "mask_names", "predict_checkpoint", "predict_files"]

log = logging.getLogger(__name__)


def list_inputs(path: str | Path, *, volumes: bool | None = None) -> list[Path]:
    """A file, or the files of a folder that a registered data format reads (each format looks in its own
    sub-folder when the folder has one: ``images/``, ``imagesTs/`` or ``imagesTr/``, ...).

    ``volumes`` picks 3D formats (True) or 2D ones (False); None takes images, or volumes when the folder
    holds no image.
    """
    from plsearch.data.formats import formats_in_order

    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"input {path} does not exist; pass an image or NIfTI file, or a folder of them")
    fmts = formats_in_order()
    vols, imgs = (sorted({f for fmt in fmts if fmt.spatial_dims == d for f in fmt.inputs(path)}) for d in (3, 2))
    chosen = vols if volumes or (volumes is None and vols and not imgs) else imgs
    if not chosen:
        dims, kind = (3, "volumes") if volumes else (2, "images")
        suffixes = dict.fromkeys(s for fmt in fmts if fmt.spatial_dims == dims for s in fmt.suffixes)
        raise FileNotFoundError(f"no {kind} ({', '.join(suffixes)}) in {path}; pass a folder that holds them")
    return chosen


def list_images(path: str | Path) -> list[Path]:
    """An image file, or the images in a folder (its ``images/`` sub-folder if it has one), sorted."""
    return list_inputs(path, volumes=False)


def mask_names(files: list[Path]) -> list[str]:
    """The file name of each input's mask: its format's ``mask_suffix`` on its stem (``a.png`` and ``a.jpg``
    give ``a_png.png`` and ``a_jpg.png``, never one name twice), or its own name where the suffix is empty."""
    from plsearch.data.formats import format_for_file
    from plsearch.outputs import unique_names

    suffix = [format_for_file(f).mask_suffix for f in files]
    names = [f.name for f in files]
    for s in sorted(set(suffix) - {""}):
        group = [i for i, x in enumerate(suffix) if x == s]
        for i, name in zip(group, unique_names([files[i] for i in group], suffix=s)):
            names[i] = name
    return names


def _check_readable(files: list[Path]) -> None:
    """Check every input as its format does (images: a full decode; volumes: the header); name the first bad one."""
    from plsearch.data.formats import format_for_file

    for f in files:
        format_for_file(f).check(f)


@torch.no_grad()
def predict_files(
    model: nn.Module,
    files: list[Path],
    out_dir: str | Path,
    *,
    image_size: int | None = None,
    grey_world: bool | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    mode: str = "auto",
    show_progress: bool = False,
) -> list[Path]:
    """Write one mask per file into ``out_dir`` (PNG for images, NIfTI for volumes); returns the written paths.

    Args:
        model: a network from ``plsearch.load`` (or any PLNet; then ``image_size`` says its training size).
        image_size, grey_world: override the network's preprocessing.
        mode: ``auto``, ``resize`` or ``sliding`` (see ``plsearch.Segmenter``).
        show_progress: a progress bar (plain lines when stderr is not a terminal).
    """
    from dataclasses import replace

    from plsearch.infer.segmenter import Preprocessing, Segmenter
    from plsearch.progress import progress

    cfg = model.config
    pre = getattr(model, "preprocessing", None) or Preprocessing(cfg.spatial_dims, cfg.in_channels, cfg.num_classes)
    if image_size is not None:
        pre = replace(pre, image_size=int(image_size))
    if grey_world is not None:
        pre = replace(pre, grey_world=bool(grey_world))
    stride = cfg.total_stride()
    if pre.image_size < stride:
        raise ValueError(
            f"image size {pre.image_size} is smaller than the network's total stride {stride}; "
            f"use --image-size {stride} or more"
        )
    _check_readable(files)  # a broken file fails before anything is written or printed
    seg = Segmenter(model, mode=mode, batch_size=batch_size, device=device, preprocessing=pre)
    if seg.mode == "resize":  # one forward at image_size per file: refuse a size that cannot fit, before any write
        from plsearch.graph.memory import check_fits

        check_fits(cfg, pre.image_size, batch=1, device=device, flag="--image-size")
    out = Path(out_dir)
    names = mask_names(files)  # a.png and a.jpg do not overwrite each other; volumes keep their .nii.gz name
    from plsearch.outputs import claim_folder, record_written

    claim_folder(out, "predict", targets=names)  # never over a file plsearch did not write (nor an input)
    record_written(out, names)
    written: list[Path] = []
    for f, name in progress(
        list(zip(files, names)), desc="predict", unit="file", mode=None if show_progress else "off"
    ):
        written.append(seg.predict_file(f, out / name))
    return written


def predict_checkpoint(
    checkpoint: str | Path,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
    batch_size: int = 8,
    mode: str = "auto",
    show_progress: bool = False,
) -> dict[str, Any]:
    """Load ``checkpoint`` (a file, run folder or ``results/NAME:12``) and write masks for ``input_path``."""
    from plsearch.infer.segmenter import load

    model = load(checkpoint, device=device)
    files = list_inputs(input_path, volumes=model.config.spatial_dims == 3)
    written = predict_files(
        model,
        files,
        out_dir,
        image_size=image_size,
        device=device,
        batch_size=batch_size,
        mode=mode,
        show_progress=show_progress,
    )
    size = image_size or model.preprocessing.image_size
    return {"masks": [str(p) for p in written], "image_size": size, "out_dir": str(out_dir)}
