"""Data the loaders must not take silently (issue 27): EXIF orientation, ambiguous MSD case files,
masks without foreground (or drawn only in alpha), and sizes refused before anything is decoded."""

from __future__ import annotations

import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from plsearch.config.schema import DataConfig
from plsearch.data.dataset import load_folder, load_splits, peek, read_image
from plsearch.data.folder import DataError
from plsearch.data.volume import check_volume_memory, list_cases

ORIENT = 0x0112  # EXIF Orientation; 6: the stored pixels are shown turned 90 degrees clockwise


def _upright() -> tuple[np.ndarray, np.ndarray]:
    """A 16x16 image with a bright top-left block, and the mask of that block, as a viewer shows them."""
    img = np.full((16, 16, 3), 20, np.uint8)
    img[:6, :6] = 235
    mask = np.zeros((16, 16), np.uint8)
    mask[:6, :6] = 255
    return img, mask


def _save(array: np.ndarray, path: Path, orientation: int | None = None) -> None:
    """Save ``array`` as a viewer should show it; with ``orientation`` store the unrotated pixels plus the tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    if orientation is None:
        im.save(path)
        return
    assert orientation == 6
    exif = Image.Exif()
    exif[ORIENT] = 6
    im.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)  # shown turned back clockwise


def _pairs(root: Path, n: int = 3, mask: np.ndarray | None = None) -> Path:
    img, m = _upright()
    for i in range(n):
        _save(img, root / "images" / f"p{i}.png")
        _save(m if mask is None else mask, root / "masks" / f"p{i}.png")
    return root


def _empty_cache(cache: Path) -> bool:
    return not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    root = tmp_path / "photos"
    img, mask = _upright()
    _save(img, root / "images" / "a.jpg", orientation=6)  # camera JPEG, mask drawn over the shown image
    _save(mask, root / "masks" / "a.png")
    _save(img, root / "images" / "b.png")
    _save(mask, root / "masks" / "b.png", orientation=6)  # the mask carries the tag
    data = load_folder(root, 16, cache=False)
    for k, sample in enumerate(data.ids):
        bright = data.images[k].float().mean(0).numpy() > 128
        fg = data.masks[k].numpy() == 1
        assert fg.sum() == 36 and (bright == fg).mean() > 0.95, f"{sample}: image and mask do not line up"
    shown = read_image(root / "images" / "a.jpg", None, "grey")[0]  # predict reads images the same way
    assert shown[:6, :6].mean() > 200 and shown[10:, 10:].mean() < 60


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_a_mask_drawn_only_in_alpha_is_refused(tmp_path, mode):
    root = _pairs(tmp_path / "d", n=2)
    alpha = np.zeros((16, 16, len(mode)), np.uint8)
    alpha[4:10, 4:10, -1] = 255  # transparent background, the object opaque; colour channels all 0
    Image.fromarray(alpha).save(root / "masks" / "p1.png")
    with pytest.raises(DataError) as e:
        load_folder(root, 16, cache=False)
    msg = str(e.value)
    assert "\n" not in msg and "p1.png" in msg and "only in the alpha channel" in msg


def test_masks_without_any_foreground_are_refused(tmp_path):
    root = _pairs(tmp_path / "blank", mask=np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(root=str(root), image_size=16, cache=False))
    msg = str(e.value)
    assert "\n" not in msg and f"no mask in {root / 'masks'} holds any foreground" in msg and "Dice 0" in msg
    # an opaque RGBA mask that is all 0 is an empty mask, not an alpha drawing: the data-set check names it
    Image.fromarray(np.zeros((16, 16, 4), np.uint8) + np.uint8([0, 0, 0, 255])).save(root / "masks" / "p0.png")
    with pytest.raises(DataError, match="holds any foreground"):
        load_splits(DataConfig(root=str(root), image_size=16, cache=False))


def _nii(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


def _volumes(root: Path, n: int = 3, foreground: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        lab = np.zeros((8, 8, 8), np.uint8)
        if foreground:
            lab[2:5, 2:5, 2:5] = 1
        _nii(root / "imagesTr" / f"case_{i}.nii.gz", rng.normal(size=(8, 8, 8)).astype(np.float32))
        _nii(root / "labelsTr" / f"case_{i}.nii.gz", lab)
    return root


def test_volume_labels_without_any_foreground_are_refused(tmp_path):
    root = _volumes(tmp_path / "vols", foreground=False)
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(root=str(root), image_size=8, cache=False))
    msg = str(e.value)
    assert "\n" not in msg and f"no mask in {root / 'labelsTr'} holds any foreground (every voxel" in msg


@pytest.mark.parametrize(
    "folder, extra",
    [
        ("imagesTr", "case_1_0000.nii.gz"),  # MSD file beside an nnU-Net channel file of the same case
        ("imagesTr", "case_1.nii"),  # the same case compressed and not
        ("labelsTr", "case_1.nii"),
    ],
)
def test_one_case_with_several_files_is_refused(tmp_path, folder, extra):
    root = _volumes(tmp_path / "vols")
    _nii(root / folder / extra, np.zeros((8, 8, 8), np.float32))
    with pytest.raises(DataError) as e:
        list_cases(root)
    msg = str(e.value)
    assert "\n" not in msg and f"case 'case_1' has several files in {root / folder}" in msg
    assert "case_1.nii.gz" in msg and extra in msg


def test_one_case_with_several_files_is_exit_2(tmp_path, capsys, monkeypatch):
    from plsearch.cli.train import main

    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    root = _volumes(tmp_path / "vols")
    _nii(root / "imagesTr" / "case_0_0000.nii.gz", np.zeros((8, 8, 8), np.float32))
    argv = ["--data", str(root), "--model", "unet", "--set", "model.spatial_dims=3", "--image-size", "16"]
    code = main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: case 'case_0' has several files") and "case_0_0000" in err[-1]


@pytest.mark.parametrize("size", [400, 2048])
def test_volume_size_beyond_memory_is_refused_before_decoding(tmp_path, monkeypatch, size):
    import plsearch.graph.memory

    cache = tmp_path / "cache"
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(cache))
    monkeypatch.setattr(plsearch.graph.memory, "available_bytes", lambda device="cpu": 1 << 30)  # 1 GiB free
    root = _volumes(tmp_path / "vols", n=2)
    t0 = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(root=str(root), image_size=size))
    assert time.perf_counter() - t0 < 5 and _empty_cache(cache)
    msg = str(e.value)
    assert "\n" not in msg and f"loading 2 volumes at {size}^3 needs about" in msg and "1.0 GiB available" in msg
    fits = int(re.search(r"use --image-size (\d+) or less", msg)[1])  # type: ignore[index]
    assert 8 < fits < 400
    assert check_volume_memory(root, list_cases(root), fits) <= 1 << 30  # the size it offers passes


def test_image_size_beyond_memory_is_refused_before_decoding_2d(tmp_path, monkeypatch):
    import plsearch.graph.memory

    cache = tmp_path / "cache"
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(cache))
    monkeypatch.setattr(plsearch.graph.memory, "available_bytes", lambda device="cpu": 100_000)
    root = _pairs(tmp_path / "d")
    with pytest.raises(DataError, match=r"loading 3 images at 4096 px needs about .*use --image-size \d+ or less"):
        load_splits(DataConfig(root=str(root), image_size=4096))
    assert _empty_cache(cache)


@pytest.mark.parametrize("size", [400, 2048])
def test_train_cli_refuses_a_3d_size_before_decoding(tmp_path, capsys, monkeypatch, size):
    from plsearch.cli.train import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(cache))
    root = _volumes(tmp_path / "vols", n=2)
    argv = ["--data", str(root), "--model", "unet", "--set", "model.spatial_dims=3", "--image-size", str(size)]
    t0 = time.perf_counter()
    code = main([*argv, "--device", "cpu", "--out", str(tmp_path / "run")])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: a forward at {size}x{size} (batch ") and "use --image-size" in err[0]
    assert _empty_cache(cache) and elapsed < 10


def test_train_cli_refuses_a_2d_network_on_volumes_before_decoding(tmp_path, capsys, monkeypatch):
    from plsearch.cli.train import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(cache))
    root = _volumes(tmp_path / "vols")
    assert peek(DataConfig(root=str(root))).channels == 1  # type: ignore[union-attr]
    assert peek(DataConfig(root=str(_pairs(tmp_path / "d")))) is None
    code = main(["--data", str(root), "--model", "unet", "--image-size", "16", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == "error: the data are 3D but model.spatial_dims=2; set model.spatial_dims=3"
    assert _empty_cache(cache)
