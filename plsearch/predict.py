"""Predict masks for image files with a trained checkpoint.

Each image is resized to the run's ``image_size`` (as in training), segmented, and its logits are
resized back (bilinear) to the file's own size before thresholding, so a mask PNG matches its
image pixel for pixel: 0/255 for binary models, the class index for multi-class ones.
Run it from the shell with ``python -m plsearch.predict --checkpoint RUN/best.pt --input DIR --out DIR``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plsearch.checkpoint import load_checkpoint
from plsearch.config import DataConfig, RunConfig
from plsearch.metrics import logits_to_labels

__all__ = ["IMAGE_SUFFIXES", "list_images", "predict_files", "predict_checkpoint"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_images(path: str | Path) -> list[Path]:
    """An image file, or the images in a folder (its ``images/`` sub-folder if it has one), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"input {path} does not exist; pass an image file or a folder of images")
    folder = path / "images" if (path / "images").is_dir() else path
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; pass a folder that holds image files"
        )
    return files


@torch.no_grad()
def predict_files(
    model: nn.Module,
    files: list[Path],
    out_dir: str | Path,
    *,
    image_size: int,
    grey_world: bool = False,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
) -> list[Path]:
    """Write one mask PNG per file (same stem) into ``out_dir``; returns the written paths.

    Args:
        model: eval-mode forward returns fused logits ``(b, k, h, w)``; its ``config.in_channels``
            picks grey or colour decoding.
        image_size: square side the model sees (the run's ``data.image_size``).
    """
    from PIL import Image

    from plsearch.data import grey_world as apply_grey_world
    from plsearch.data import read_image, to_input

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    channels = getattr(getattr(model, "config", None), "in_channels", 3)
    binary = getattr(getattr(model, "config", None), "num_classes", 1) == 1
    model.eval()
    written: list[Path] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        arrays, sizes = [], []
        for f in chunk:
            a = read_image(f, image_size, channels)  # first: an unreadable file is a DataError naming it
            with Image.open(f) as im:
                sizes.append((im.height, im.width))
            arrays.append(apply_grey_world(a) if grey_world else a)
        x = to_input(torch.from_numpy(np.stack(arrays))).to(device)
        logits = model(x).float()
        for f, size, lg in zip(chunk, sizes, logits):
            lg = F.interpolate(lg[None], size=size, mode="bilinear", align_corners=False)
            labels = logits_to_labels(lg)[0].to(torch.uint8).cpu().numpy()
            target = out / f"{f.stem}.png"
            Image.fromarray(labels * 255 if binary else labels).save(target)
            written.append(target)
    return written


def predict_checkpoint(
    checkpoint: str | Path,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Load ``checkpoint`` and write masks for ``input_path`` (a file or a folder) into ``out_dir``."""
    files = list_images(input_path)
    model, ckpt = load_checkpoint(checkpoint, device=device)
    run = ckpt.get("run_config")
    data_cfg = RunConfig.from_dict(run).data if run else DataConfig()
    size = image_size or data_cfg.image_size
    written = predict_files(model, files, out_dir, image_size=size, grey_world=data_cfg.grey_world,
                            device=device, batch_size=batch_size)
    return {"masks": [str(p) for p in written], "image_size": size, "out_dir": str(out_dir)}


if __name__ == "__main__":
    from plsearch.cli.predict import main

    raise SystemExit(main())
