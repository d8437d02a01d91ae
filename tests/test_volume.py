"""The MSD / nnU-Net volume reader: real hippocampus volumes, and broken folders written to tmp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import shared_volume_data

from plsearch.config.schema import DataConfig
from plsearch.data.dataset import load_splits
from plsearch.data.folder import DataError
from plsearch.data.volume import fit_volume, list_cases, read_case, read_volume, write_nifti
from plsearch.data.volume_data import VolumeData, load_volume_folder

HIPPO_CASES = [
    "hippocampus_001",
    "hippocampus_003",
    "hippocampus_004",
    "hippocampus_006",
    "hippocampus_007",
    "hippocampus_008",
]
LABELS = {"0": "background", "1": "Anterior", "2": "Posterior"}


@pytest.fixture()
def hippo_few(tmp_path) -> Path:
    """Six real hippocampus cases (symlinked) with the real dataset.json and a split csv."""
    src = shared_volume_data("hippocampus")
    root = tmp_path / "hippo"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
        for c in HIPPO_CASES:
            (root / sub / f"{c}.nii.gz").symlink_to(src / sub / f"{c}.nii.gz")
    shutil.copy(src / "dataset.json", root / "dataset.json")
    splits = ["train", "train", "train", "val", "test", "test"]
    (root / "split.csv").write_text("id,split\n" + "".join(f"{c},{s}\n" for c, s in zip(HIPPO_CASES, splits)))
    return root


def _write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))


def _synthetic(root: Path, n: int = 3, shape=(10, 12, 8), labels=LABELS) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.normal(100.0 * (i + 1), 10.0 * (i + 1), size=shape).astype(np.float32)
        lab = np.zeros(shape, dtype=np.uint8)
        lab[2:5, 3:6, 2:4] = 1
        lab[6:8, 6:9, 4:6] = 2
        _write(root / "imagesTr" / f"case_{i}.nii.gz", img)
        _write(root / "labelsTr" / f"case_{i}.nii.gz", lab)
    (root / "dataset.json").write_text(json.dumps({"labels": labels, "modality": {"0": "MRI"}}))
    return root


def test_real_volumes_read_split_and_normalised(hippo_few):
    cfg = DataConfig(root=str(hippo_few), image_size=16, cache=False)
    splits = load_splits(cfg, num_classes=3)
    assert {s: len(d) for s, d in splits.items()} == {"train": 3, "val": 1, "test": 2}
    train = splits["train"]
    assert isinstance(train, VolumeData) and train.class_names == {0: "background", 1: "Anterior", 2: "Posterior"}
    assert train.images.shape == (3, 1, 16, 16, 16) and train.images.dtype == torch.float32
    assert set(torch.unique(train.masks).tolist()) == {0, 1, 2}
    # spacing of the stored grid: 1 mm in the files, times file size / 16 after resizing
    orig = np.asarray(nib.load(str(hippo_few / "imagesTr" / "hippocampus_001.nii.gz")).shape)
    np.testing.assert_allclose(train.spacing[0], orig / 16.0)
    np.testing.assert_array_equal(train.shapes[0], orig)
    x, y = train.batch([0, 2])
    assert x.shape == (2, 1, 16, 16, 16) and y.dtype == torch.int64
    # per-volume z-score, although raw maxima differ by orders of magnitude between scans
    for c in HIPPO_CASES[:3]:
        img, _, spacing = read_volume(hippo_few / "imagesTr" / f"{c}.nii.gz")
        assert abs(img.mean()) < 1e-4 and abs(img.std() - 1) < 1e-3 and spacing == (1.0, 1.0, 1.0)


def test_float_labels_are_cast_to_integers(hippo_few):
    cases = list_cases(hippo_few)
    stored = {c.id: np.asarray(nib.load(str(c.label)).dataobj).dtype for c in cases}
    floaty = [c for c in cases if np.issubdtype(stored[c.id], np.floating)]
    assert floaty, "expected at least one float-stored label among the sampled cases"
    r = read_case(floaty[0], {0, 1, 2})
    assert r["label"].dtype == np.uint8 and set(np.unique(r["label"])) <= {0, 1, 2}


def test_fit_volume_pad_crop_and_resize():
    img = np.arange(2 * 5 * 9 * 4, dtype=np.float32).reshape(2, 5, 9, 4)
    lab = (img[0] % 3).astype(np.uint8)
    x, y, scale = fit_volume(img, lab, 6, "pad_crop")
    assert x.shape == (2, 6, 6, 6) and y.shape == (6, 6, 6) and scale == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(x[:, :5, :, 1:5], img[:, :, 1:7, :])  # pad 0/1, crop 1/2, pad 1/1
    assert (x[:, 5] == 0).all() and (y[:, :, 0] == 0).all()
    x, y, scale = fit_volume(img, lab, 8, "resize")
    assert x.shape == (2, 8, 8, 8) and set(np.unique(y)) <= {0, 1, 2}
    assert scale == pytest.approx((5 / 8, 9 / 8, 4 / 8))


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("shape", "has shape (10, 12, 7) but image"),
        ("affine", "different affines"),
        ("fraction", "non-integer values"),
        ("unknown", "values [3] not named in dataset.json"),
        ("orphan_image", "has no label"),
        ("orphan_label", "has no image"),
        ("garbage", "cannot read image"),
    ],
)
def test_broken_folders_fail_up_front_with_one_line(tmp_path, breakage, message):
    root = _synthetic(tmp_path / "vols")
    img1, lab1 = root / "imagesTr" / "case_1.nii.gz", root / "labelsTr" / "case_1.nii.gz"
    lab = np.asarray(nib.load(str(lab1)).dataobj)
    if breakage == "shape":
        _write(lab1, lab[:, :, :7])
    elif breakage == "affine":
        shifted = np.eye(4)
        shifted[0, 3] = 5.0
        _write(lab1, lab, shifted)
    elif breakage == "fraction":
        _write(lab1, lab.astype(np.float32) * 0.5)
    elif breakage == "unknown":
        lab = lab.copy()
        lab[0, 0, 0] = 3
        _write(lab1, lab)
    elif breakage == "orphan_image":
        lab1.unlink()
    elif breakage == "orphan_label":
        img1.unlink()
    elif breakage == "garbage":
        img1.write_bytes(b"not a nifti file at all")
    with pytest.raises(DataError) as e:
        load_volume_folder(root, 8, num_classes=3, cache=False)
    text = str(e.value)
    assert message in text and "\n" not in text
    assert "case_1" in text


def test_class_count_must_match_the_model(tmp_path):
    root = _synthetic(tmp_path / "vols")
    with pytest.raises(DataError, match="set model.num_classes=3"):
        load_volume_folder(root, 8, num_classes=2, cache=False)
    data = load_volume_folder(root, 8, num_classes=3, cache=False)
    assert len(data) == 3 and data.subset([2, 0]).ids == ("case_2", "case_0")


def test_nnunet_v2_channels_and_label_map(tmp_path):
    root = tmp_path / "v2"
    rng = np.random.default_rng(1)
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    for case in ("a", "b"):
        for ch in range(2):
            _write(root / "imagesTr" / f"{case}_{ch:04d}.nii.gz", rng.normal(size=(6, 6, 6)).astype(np.float32))
        _write(root / "labelsTr" / f"{case}.nii.gz", lab)
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "lesion": 1}}))
    data = load_volume_folder(root, 8, num_classes=1, cache=False)  # two classes read as binary
    assert data.channels == 2 and data.class_names == {0: "background", 1: "lesion"}


def test_train_cli_names_the_broken_file(tmp_path, capsys):
    from plsearch.cli.train import main

    root = _synthetic(tmp_path / "vols")
    _write(root / "labelsTr" / "case_2.nii.gz", np.full((10, 12, 8), 0.25, np.float32))
    code = main(
        [
            "--data",
            str(root),
            "--model",
            "unet",
            "--set",
            "model.spatial_dims=3",
            "--set",
            "model.num_classes=3",
            "--image-size",
            "16",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: label ") and "case_2" in err[-1]


def test_write_nifti_keeps_the_affine(tmp_path):
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [10.0, -4.0, 3.0]
    labels = np.zeros((5, 6, 7), np.uint8)
    labels[1:3, 2:4, 3:6] = 2
    out = write_nifti(tmp_path / "pred" / "case.nii.gz", labels, affine)
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj), labels)
    assert back.header.get_zooms()[:3] == pytest.approx((0.8, 0.8, 2.5))


def test_a_2d_network_on_volumes_is_one_line(tmp_path, capsys):
    from plsearch.cli.train import main

    root = _synthetic(tmp_path / "vols")
    code = main(
        [
            "--data",
            str(root),
            "--model",
            "unet",
            "--set",
            "model.num_classes=3",
            "--image-size",
            "16",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == "error: the data are 3D but model.spatial_dims=2; set model.spatial_dims=3"


def test_volume_fit_pad_crop_keeps_the_spacing(tmp_path):
    root = _synthetic(tmp_path / "vols")  # (10, 12, 8) at 1 mm
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    for i in range(3):  # anisotropic voxels: 0.5 x 0.5 x 2 mm
        for sub in ("imagesTr", "labelsTr"):
            f = root / sub / f"case_{i}.nii.gz"
            _write(f, np.asarray(nib.load(str(f)).dataobj), affine)
    kept = load_splits(DataConfig(root=str(root), image_size=8, volume_fit="pad_crop", cache=False), num_classes=3)
    resized = load_splits(DataConfig(root=str(root), image_size=8, cache=False), num_classes=3)
    for split in ("train", "test"):
        assert kept[split].images.shape[2:] == (8, 8, 8)
        np.testing.assert_allclose(kept[split].spacing, [[0.5, 0.5, 2.0]] * len(kept[split]))
        np.testing.assert_allclose(resized[split].spacing, [[0.5 * 10 / 8, 0.5 * 12 / 8, 2.0]] * len(resized[split]))
    # pad/crop keeps voxel values: the centre crop of the stored labels, not an interpolation
    lab = np.asarray(nib.load(str(root / "labelsTr" / "case_0.nii.gz")).dataobj).astype(np.uint8)
    data = next(d for d in kept.values() if "case_0" in d.ids)
    got = data.masks[data.ids.index("case_0")].numpy()
    np.testing.assert_array_equal(got, lab[1:9, 2:10, :])


def test_volume_fit_is_checked_at_the_gate(tmp_path, capsys):
    from plsearch.cli.train import main
    from plsearch.config.gate import resolve
    from plsearch.config.schema import ConfigError

    with pytest.raises(ConfigError) as e:
        resolve(None, {"data.volume_fit": "crop"})
    assert str(e.value) == "data.volume_fit='crop' is not allowed; choose one of ['resize', 'pad_crop']"
    assert resolve(None, ["volume_fit=pad_crop"]).data.volume_fit == "pad_crop"
    from plsearch.data.dataset import load_splits as load2d

    with pytest.raises(ConfigError, match="applies to 3D volume folders"):  # 2D images are always resized
        resolve(
            None,
            {"data.volume_fit": "pad_crop", "data.synthetic_count": 8},
            data=load2d(DataConfig(image_size=32, synthetic_count=8)),
        )
    root = _synthetic(tmp_path / "vols")
    args = ["--data", str(root), "--model", "unet", "--set", "model.spatial_dims=3", "--out", str(tmp_path / "run")]
    assert main([*args, "--set", "data.volume_fit=crop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: data.volume_fit='crop' is not allowed") and len(err) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "broken, message",
    [
        ("unknown_id", "id 'case_9' has no image in {root}/imagesTr; remove the line"),
        ("file_name", "id 'case_1.nii.gz' has no image in {root}/imagesTr; write the id 'case_1'"),
        ("no_labels", "{root} has imagesTr/ but no labelsTr/ folder; put labels in {root}/labelsTr/<case>.nii.gz"),
        ("no_images", "{root} has labelsTr/ but no imagesTr/ folder; put volumes in {root}/imagesTr/<case>.nii.gz"),
    ],
)
def test_msd_split_and_layout_errors_name_the_msd_folders(tmp_path, broken, message):
    root = _synthetic(tmp_path / "vols")
    if broken in ("unknown_id", "file_name"):
        bad = "case_9" if broken == "unknown_id" else "case_1.nii.gz"
        (root / "split.csv").write_text(f"id,split\ncase_0,train\n{bad},test\n")
    else:
        shutil.rmtree(root / ("labelsTr" if broken == "no_labels" else "imagesTr"))
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(root=str(root), image_size=8, cache=False), num_classes=3)
    text = str(e.value)
    assert message.format(root=root) in text and "\n" not in text
    assert "images/" not in text.replace("imagesTr/", "")  # never the 2D layout's folder


@pytest.mark.parametrize("dims", [2, 3])
def test_split_arrays_share_one_shape_contract(dims):
    from plsearch.data.dataset import SegmentationData

    make = (
        (lambda i, m, ids: SegmentationData(i, m, ids))
        if dims == 2
        else (
            lambda i, m, ids: VolumeData(
                i, m, ids, np.ones((len(ids), 3)), np.ones((len(ids), 3)), np.zeros((len(ids), 4, 4)), {}
            )
        )
    )
    sp = (6,) * dims
    good = torch.zeros((2, 1, *sp), dtype=torch.uint8 if dims == 2 else torch.float32)
    masks = torch.zeros((2, *sp), dtype=torch.uint8)
    assert len(make(good, masks, ["a", "b"])) == 2
    axes = "h, w" if dims == 2 else "d, h, w"
    wrong = good.float() if dims == 2 else good.to(torch.uint8)
    with pytest.raises(ValueError, match=rf"images must be {'uint8' if dims == 2 else 'float'} \(n, c, {axes}\)"):
        make(wrong, masks, ["a", "b"])
    with pytest.raises(ValueError, match=rf"masks must be uint8 \(n, {axes}\)"):
        make(good, masks.long(), ["a", "b"])
    with pytest.raises(ValueError, match="and 1 ids disagree"):
        make(good, masks, ["a"])
    with pytest.raises(ValueError, match="disagree"):
        make(good, torch.zeros((2, *sp[:-1], 5), dtype=torch.uint8), ["a", "b"])
