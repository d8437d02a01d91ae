from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data
from PIL import Image

import plsearch.data.folder
from plsearch.config.schema import DataConfig
from plsearch.data.dataset import (
    DataError,
    SegmentationData,
    grey_world,
    load_folder,
    load_splits,
    read_image,
    split_indices,
)
from plsearch.data.synthetic import write_synthetic


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))


def _folder(root: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]], ext: str = ".png") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for sid, (img, mask) in pairs.items():
        Image.fromarray(img).save(root / "images" / f"{sid}{ext}")
        Image.fromarray(mask).save(root / "masks" / f"{sid}.png")
    return root


def _pair(h: int = 20, w: int = 20, colour: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3) if colour else (h, w), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 255
    return img, mask


def _small(tmp_path: Path, n: int = 4, **kw) -> Path:
    return _folder(tmp_path / "d", {f"s{i}": _pair(seed=i, **kw) for i in range(n)})


# ----------------------------------------------------------------------------- SegmentationData


def test_segmentation_data_batches():
    data = SegmentationData(
        torch.arange(10 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(10, 3, 4, 4),
        (torch.arange(10 * 16) % 2).to(torch.uint8).view(10, 4, 4),
        tuple(f"i{k}" for k in range(10)),
    )
    assert len(data) == 10 and data.channels == 3 and data.image_size == (4, 4)
    seen = []
    for x, y, idx in data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and idx.dtype == torch.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert torch.equal(x, data.images[idx].float() / 255) and torch.equal(y, data.masks[idx].long())
        seen += idx.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    again = [i for _, _, idx in data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)) for i in idx]
    assert again == seen
    assert [len(i) for *_, i in data.batches(4, drop_last=True)] == [4, 4]
    sub = data.subset([7, 2])
    assert sub.ids == ("i7", "i2") and torch.equal(sub.images[0], data.images[7])
    assert data.subset(torch.tensor([7, 2])).ids == sub.ids and data.subset(np.array([2])).ids == ("i2",)
    assert torch.equal(data.batch([7, 2])[1], sub.masks.long())
    assert len(data.subset([])) == 0 and data.to("cpu").ids == data.ids
    with pytest.raises(ValueError):
        SegmentationData(data.images, data.masks[:3], data.ids)


# ----------------------------------------------------------------------------- splits


def test_seeded_split_is_deterministic_disjoint_and_complete():
    a = split_indices(50, 0.1, 0.2, seed=3)
    assert {k: len(v) for k, v in a.items()} == {"train": 35, "val": 5, "test": 10}
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(50))
    b, c = split_indices(50, 0.1, 0.2, seed=3), split_indices(50, 0.1, 0.2, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    tiny = split_indices(3, 0.1, 0.2, seed=0)
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 1, 1]


def test_load_splits_synthetic():
    splits = load_splits(DataConfig(root="", image_size=32, synthetic_count=20, seed=1))
    assert {k: len(v) for k, v in splits.items()} == {"train": 14, "val": 2, "test": 4}
    ids = [i for v in splits.values() for i in v.ids]
    assert len(set(ids)) == 20
    assert splits["train"].images.shape[1:] == (3, 32, 32)
    grey = load_splits(DataConfig(root="", image_size=32, synthetic_count=8, channels="grey"))
    assert grey["train"].channels == 1


def test_load_splits_folder_seeded(tmp_path):
    root = write_synthetic(tmp_path / "s", 10, 16, seed=0)
    a = load_splits(DataConfig(root=str(root), image_size=16, val_fraction=0.2, test_fraction=0.3, seed=5))
    b = load_splits(DataConfig(root=str(root), image_size=16, val_fraction=0.2, test_fraction=0.3, seed=5))
    assert {k: len(v) for k, v in a.items()} == {"train": 5, "val": 2, "test": 3}
    assert all(a[k].ids == b[k].ids for k in a)
    assert not set(a["train"].ids) & set(a["test"].ids)


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("id,split\n" + "".join(f"{i},{s}\n" for i, s in rows))
    return path


def test_split_csv_is_honoured(tmp_path):
    root = write_synthetic(tmp_path / "s", 8, 16, seed=0)
    want = {
        "train": ["synth_0000", "synth_0003", "synth_0005", "synth_0007"],
        "val": ["synth_0001"],
        "test": ["synth_0002", "synth_0004", "synth_0006"],
    }
    _csv(root / "split.csv", [(i, k) for k, v in want.items() for i in v])
    splits = load_splits(DataConfig(root=str(root), image_size=16))
    assert {k: list(v.ids) for k, v in splits.items()} == want


def test_split_csv_without_val_carves_val_from_train(tmp_path):
    root = write_synthetic(tmp_path / "s", 12, 16, seed=0)
    rows = [(f"synth_{i:04d}", "test" if i < 2 else "train") for i in range(12)]
    _csv(tmp_path / "elsewhere.csv", rows)
    cfg = DataConfig(root=str(root), image_size=16, split_csv=str(tmp_path / "elsewhere.csv"), val_fraction=0.2)
    a, b = load_splits(cfg), load_splits(cfg)
    assert a["test"].ids == ("synth_0000", "synth_0001")
    assert len(a["val"]) == 2 and len(a["train"]) == 8
    assert not set(a["val"].ids) & set(a["train"].ids) and not set(a["val"].ids) & set(a["test"].ids)
    assert a["val"].ids == b["val"].ids


def test_split_csv_errors(tmp_path):
    root = write_synthetic(tmp_path / "s", 4, 16, seed=0)
    _csv(root / "split_a.csv", [("synth_0000", "train"), ("nope", "test")])
    with pytest.raises(DataError, match=r"split_a\.csv line 3: id 'nope'"):
        load_splits(DataConfig(root=str(root), image_size=16))
    _csv(root / "split_b.csv", [("synth_0000", "train")])
    with pytest.raises(DataError, match=r"several split files .*data\.split_csv"):
        load_splits(DataConfig(root=str(root), image_size=16))
    _csv(root / "split_c.csv", [("synth_0000", "holdout")])
    with pytest.raises(DataError, match="'holdout' is not one of"):
        load_splits(DataConfig(root=str(root), image_size=16, split_csv="split_c.csv"))
    ok = load_splits(DataConfig(root=str(root), image_size=16, split_csv="split_b.csv"))
    assert ok["train"].ids == ("synth_0000",) and len(ok["test"]) == 0
    with pytest.raises(DataError, match="missing.csv does not exist"):
        load_splits(DataConfig(root=str(root), image_size=16, split_csv="missing.csv"))


# ----------------------------------------------------------------------------- decoding


def test_channels_auto_rgb_grey_and_alpha(tmp_path):
    grey = _small(tmp_path / "g")
    assert load_folder(grey, 16).channels == 1
    assert load_folder(grey, 16, channels="rgb").channels == 3
    colour = _small(tmp_path / "c", colour=True)
    assert load_folder(colour, 16).channels == 3
    g = load_folder(colour, 16, channels="grey")
    assert g.channels == 1
    rgba = np.dstack([_pair(colour=True)[0], np.full((20, 20), 7, np.uint8)])
    root = _folder(tmp_path / "a", {"x": (rgba, _pair()[1])})
    assert Image.open(root / "images" / "x.png").mode == "RGBA"
    a = read_image(root / "images" / "x.png", None, 3)
    assert a.shape == (3, 20, 20) and np.array_equal(a, _pair(colour=True)[0].transpose(2, 0, 1))
    assert load_folder(root, 20).images.shape == (1, 3, 20, 20)
    assert read_image(root / "images" / "x.png", 8, "grey").shape == (1, 8, 8)


def test_resize_and_mask_mapping(tmp_path):
    root = _folder(tmp_path / "d", {"a": _pair(40, 30), "b": _pair(40, 30, seed=1)})
    d = load_folder(root, 10)
    assert d.images.shape == (2, 1, 10, 10) and d.masks.shape == (2, 10, 10)
    assert set(d.masks.unique().tolist()) == {0, 1}
    assert d.masks.float().mean() == pytest.approx(0.0625, abs=0.04)


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".tif"])
def test_other_formats(tmp_path, ext):
    root = _folder(tmp_path / "d", {"a": _pair(colour=True)}, ext=ext)
    d = load_folder(root, 16)
    assert d.ids == ("a",) and d.images.shape == (1, 3, 16, 16)


def test_multiclass_and_01_masks(tmp_path):
    img = _pair()[0]
    mask = np.zeros((20, 20), np.uint8)
    mask[:5], mask[5:10] = 1, 2
    root = _folder(tmp_path / "d", {"a": (img, mask)})
    d = load_folder(root, 20, num_classes=3)
    assert torch.equal(d.masks[0], torch.from_numpy(mask))
    with pytest.raises(DataError, match=r"masks/a\.png holds class index 2 but num_classes=2"):
        load_folder(root, 20, num_classes=2)
    binary = _folder(tmp_path / "b", {"a": (img, (mask > 0).astype(np.uint8))})
    assert load_folder(binary, 20).masks.max() == 1
    assert load_folder(_small(tmp_path / "t"), 20, num_classes=2).masks.max() == 1  # 0/255 as 2 classes


def test_grey_world_equalises_channel_means(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 60
    img[:8] //= 2
    out = grey_world(img.transpose(2, 0, 1))
    means = out.reshape(3, -1).mean(1)
    assert np.ptp(means) < 1.0 and abs(means.mean() - img.mean()) < 1.0
    root = _folder(tmp_path / "d", {"a": (img, _pair(16, 16)[1])})
    d = load_folder(root, 16, grey_world=True)
    assert np.ptp(d.images[0].float().mean(dim=(1, 2)).numpy()) < 1.0
    g = _small(tmp_path / "g")
    assert torch.equal(load_folder(g, 16, grey_world=True).images, load_folder(g, 16).images)


# ----------------------------------------------------------------------------- cache


def test_cache_hit_avoids_decoding(tmp_path, monkeypatch):
    root = _small(tmp_path, n=3, colour=True)
    first = load_folder(root, 12)
    assert list((tmp_path / "cache" / "data").glob("*.npz"))
    assert not list(root.rglob("*.npz"))  # nothing written into the data folder

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(plsearch.data.folder, "_decode_pair", boom)
    second = load_folder(root, 12)
    assert torch.equal(first.images, second.images) and torch.equal(first.masks, second.masks)
    assert load_folder(root, 12, channels="grey").channels == 1  # channel modes share the cache
    with pytest.raises(AssertionError, match="decoded again"):
        load_folder(root, 12, cache=False)
    with pytest.raises(AssertionError, match="decoded again"):
        load_folder(root, 14)  # another size is another entry
    Image.fromarray(_pair(seed=9, colour=True)[0]).save(root / "images" / "s1.png")
    os.utime(root / "images" / "s1.png", ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded again"):
        load_folder(root, 12)  # a changed file invalidates the entry


def test_read_only_cache_dir_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(blocker))
    assert len(load_folder(_small(tmp_path), 8)) == 4


# ----------------------------------------------------------------------------- bad data


def _raises(root: Path, match: str, **kw) -> str:
    with pytest.raises(DataError, match=match) as info:
        load_folder(root, 16, **kw)
    msg = str(info.value)
    assert "\n" not in msg and ";" in msg  # one line: the problem; the fix
    return msg


def test_missing_folders_and_empty(tmp_path):
    _raises(tmp_path / "nowhere", "does not exist")
    (tmp_path / "a" / "masks").mkdir(parents=True)
    _raises(tmp_path / "a", r"has no images/ folder")
    (tmp_path / "b" / "images").mkdir(parents=True)
    _raises(tmp_path / "b", r"has no masks/ folder")
    (tmp_path / "c" / "images").mkdir(parents=True)
    (tmp_path / "c" / "masks").mkdir(parents=True)
    (tmp_path / "c" / "images" / "notes.txt").write_text("x")
    _raises(tmp_path / "c", r"images holds no image files")


def test_unpaired_files(tmp_path):
    root = _small(tmp_path)
    (root / "masks" / "s2.png").unlink()
    _raises(root, r"image .*images/s2\.png has no mask")
    root = _small(tmp_path / "x")
    (root / "images" / "s3.png").unlink()
    _raises(root, r"mask .*masks/s3\.png has no image")
    root = _small(tmp_path / "y")
    Image.fromarray(_pair()[0]).save(root / "images" / "s0.jpg")
    _raises(root, r"images/s0\.jpg and .*images/s0\.png share the id 's0'; keep one file per id")


def test_size_mismatch(tmp_path):
    root = _folder(tmp_path / "d", {"a": _pair(), "b": (_pair()[0], _pair(20, 21)[1])})
    _raises(root, r"image .*images/b\.png \(20x20\) and mask .*masks/b\.png \(21x20\) differ in size")


def test_corrupt_files(tmp_path):
    root = _small(tmp_path)
    (root / "images" / "s1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    msg = _raises(root, r"cannot read image .*images/s1\.png")
    assert "replace or remove" in msg
    root = _small(tmp_path / "t")
    data = (root / "masks" / "s2.png").read_bytes()
    (root / "masks" / "s2.png").write_bytes(data[: len(data) // 2])  # truncated
    _raises(root, r"cannot read mask .*masks/s2\.png")


def test_unexpected_mask_values(tmp_path):
    img, mask = _pair()
    mask[0, 0] = 128
    root = _folder(tmp_path / "d", {"a": _pair(), "b": (img, mask)})
    msg = _raises(root, r"mask .*masks/b\.png has values \[128\] but binary masks hold only 0/255 or 0/1")
    assert "num_classes" in msg
    colour = _folder(tmp_path / "c", {"a": (img, np.dstack([_pair()[1], _pair()[1] // 2, _pair()[1]]))})
    _raises(colour, r"masks/a\.png is a colour image")


def test_several_problems_report_the_first_and_count(tmp_path):
    root = _small(tmp_path)
    for k in (1, 2):
        (root / "images" / f"s{k}.png").write_bytes(b"junk")
    _raises(root, r"images/s1\.png .*\(and 1 more problem\)")


# ----------------------------------------------------------------------------- real data


@pytest.mark.data
@pytest.mark.slow
def test_dsb2018_reads_all_670_pairs():
    root = shared_data("dsb2018")
    t = time.perf_counter()
    splits = load_splits(DataConfig(root=str(root), image_size=64))
    assert time.perf_counter() - t < 20
    assert sum(len(v) for v in splits.values()) == 670
    assert len(splits["test"]) == 134 and len(splits["val"]) == round(536 * 0.1)
    train = splits["train"]
    assert train.channels == 3 and train.image_size == (64, 64)
    fg = train.masks.float().mean()
    assert 0.05 < fg < 0.3  # nuclei cover ~14 % of the pixels
    assert train.images.float().std() > 10


@pytest.mark.data
def test_ddti_and_isic2017_pairs(tmp_path):
    for name, channels, csv in (("ddti", 1, True), ("isic2017", 3, False)):
        src = shared_data(name)
        ids = sorted(p.stem for p in (src / "images").iterdir())[:6]
        root = tmp_path / name
        for sub in ("images", "masks"):  # a few pairs, linked, not copied
            (root / sub).mkdir(parents=True)
            for i in ids:
                (root / sub / f"{i}.png").symlink_to(src / sub / f"{i}.png")
        d = load_folder(root, 48)
        assert len(d) == 6 and d.channels == channels and d.ids == tuple(ids)
        assert set(d.masks.unique().tolist()) == {0, 1}
        assert np.array_equal(read_image(src / "images" / f"{ids[0]}.png", 48, channels), d.images[0].numpy())
        assert (src / "split_80_20.csv").exists() == csv
