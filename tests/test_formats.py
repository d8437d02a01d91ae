"""Data formats: every registered format keeps the contract, lookups follow the registry, and a new format is
one module a search space lists under ``imports:`` that loads, trains, predicts, evaluates and segments."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from plsearch.config.schema import DataConfig
from plsearch.data.formats import (
    FORMATS,
    DataFormat,
    detect_format,
    format_for_file,
    get_format,
    list_formats,
    register_format,
)
from plsearch.testing import ContractError, check_format


@pytest.mark.parametrize("name", list_formats())
def test_format_contract(name):
    check_format(name)


def test_roots_and_files_go_to_their_format(tmp_path):
    assert detect_format("").name == "synthetic"
    assert detect_format(tmp_path / "nowhere").name == "folder"  # the default, whose loader names what is missing
    (tmp_path / "v" / "labelsTr").mkdir(parents=True)
    assert detect_format(tmp_path / "v").name == "msd"
    (tmp_path / "f" / "masks").mkdir(parents=True)
    assert detect_format(tmp_path / "f").name == "folder"
    assert format_for_file("case.NII.GZ").name == "msd" and format_for_file("case.nii").name == "msd"
    assert format_for_file("img.TIF").name == "folder"
    assert format_for_file("img.gif").name == "folder"  # no suffix matches: Pillow has a go
    with pytest.raises(ValueError, match="built in"):
        register_format("msd")(type("Other", (get_format("folder").__class__,), {}))


def test_one_type_and_one_split_for_2d_and_3d(tmp_path):
    from plsearch.data.splits import SegmentationData, split_ids
    from plsearch.data.volume_data import VolumeData

    assert VolumeData is SegmentationData
    vols = SegmentationData(
        torch.zeros((4, 1, 3, 3, 3)),
        torch.zeros((4, 3, 3, 3), dtype=torch.uint8),
        ("a", "b", "c", "d"),
        np.arange(12.0).reshape(4, 3),
        np.ones((4, 3), dtype=np.int64),
        np.stack([np.eye(4)] * 4),
        {0: "background"},
    )
    sub = vols.subset([3, 1])
    assert sub.ids == ("d", "b") and sub.spatial_dims == 3 and sub.class_names == {0: "background"}
    np.testing.assert_array_equal(sub.spacing, [[9.0, 10.0, 11.0], [3.0, 4.0, 5.0]])
    images = SegmentationData(
        torch.zeros((4, 1, 3, 3), dtype=torch.uint8), torch.zeros((4, 3, 3), dtype=torch.uint8), tuple("abcd")
    )
    assert images.spatial_dims == 2 and images.spacing is None and images.subset([0]).spacing is None
    with pytest.raises(ValueError, match="spacing holds 2 rows for 4 samples"):
        SegmentationData(vols.images, vols.masks, vols.ids, np.ones((2, 3)))
    # one split for both: the same ids give the same split, whatever the data are
    cfg = DataConfig(val_fraction=0.25, test_fraction=0.25, seed=3)
    a, b = split_ids(cfg, vols.ids), split_ids(cfg, images.ids)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    (tmp_path / "split.csv").write_text("id,split\na,train\nb,train\nc,val\nd,test\n")
    by_csv = split_ids(cfg, vols.ids, tmp_path, "imagesTr")
    assert {s: v.tolist() for s, v in by_csv.items()} == {"train": [0, 1], "val": [2], "test": [3]}


def test_the_kit_catches_a_broken_format():
    from PIL import Image

    from plsearch.data.folder import FolderFormat

    @register_format("h1_careless")
    class Careless(FolderFormat):  # reads PNGs as the folder format does, but lets Pillow's errors through
        def check(self, path: Path) -> None:
            Image.open(path).load()

    try:
        with pytest.raises(ContractError, match="not a DataError"):
            check_format("h1_careless")
    finally:
        FORMATS.unregister("h1_careless")
    assert detect_format("").name == "synthetic" and format_for_file("a.png").name == "folder"


# ----------------------------------------------------------------------------- the proof: a format plsearch never saw

PLUGIN = '''
"""A data format plsearch does not ship: grey images and masks as .npy pairs in x/ and y/."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from plsearch.data.formats import DataFormat, example_samples, register_format
from plsearch.data.splits import DataError, SegmentationData


@register_format("npy_pairs")
class NpyPairs(DataFormat):
    spatial_dims = 2
    suffixes = (".npy",)
    images_dir, masks_dir = "x", "y"

    def detect(self, root):
        return (root / "x").is_dir() and (root / "y").is_dir()

    def read(self, path, channels="auto"):
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {path} ({type(e).__name__}); save it with numpy.save") from None
        a = a[None].astype(np.uint8)
        return (np.repeat(a, 3, 0) if channels in (3, "rgb") else a), {}

    def load(self, cfg, num_classes=None):
        root, size = Path(cfg.root), (cfg.image_size, cfg.image_size)
        ids = self.ids(cfg)
        if not ids:
            raise DataError(f"{root}/x holds no .npy files; save images as x/<id>.npy")

        def fit(a, mode):
            return F.interpolate(torch.from_numpy(a)[None].float(), size=size, mode=mode)[0]

        images = [fit(self.read(root / "x" / f"{i}.npy", cfg.channels)[0], "bilinear") for i in ids]
        masks = [fit(np.load(root / "y" / f"{i}.npy")[None], "nearest")[0] for i in ids]
        return SegmentationData(
            torch.stack(images).round().to(torch.uint8), (torch.stack(masks) > 0).to(torch.uint8), tuple(ids)
        )

    def example(self, folder):
        for sub in ("x", "y"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for sid, image, mask in example_samples(2, count=8, size=24):
            np.save(folder / "x" / f"{sid}.npy", image)
            np.save(folder / "y" / f"{sid}.npy", mask)
        return str(folder)
'''

SPACE = """
description: a space over data in a format plsearch never saw (npy_format.py registers it)
imports: [npy_format.py]
references: false
model.steps: {{low: 1, high: 2}}
fidelity:
  data.root: {root}
  data.image_size: 16
  data.val_fraction: 0.25
  data.test_fraction: 0.25
  data.cache: false
  model.base_width: 4
  model.stages: 1
  model.depth: 3
  train.epochs: 1
  train.max_steps_per_epoch: 1
  train.batch_size: 2
  train.augment: false
  train.amp: false
  train.device: cpu
"""


def test_a_new_format_is_one_module_listed_under_imports(tmp_path):
    import plsearch
    from plsearch.data.dataset import load_splits
    from plsearch.infer.evaluate import evaluate_checkpoint
    from plsearch.infer.predict import predict_checkpoint
    from plsearch.nn.model import PLNet
    from plsearch.search.space import load_space
    from plsearch.train.fit import fit

    (tmp_path / "npy_format.py").write_text(textwrap.dedent(PLUGIN))
    root = tmp_path / "data"
    (tmp_path / "space.yaml").write_text(SPACE.format(root=root))
    assert "npy_pairs" not in list_formats()
    try:
        space = load_space(tmp_path / "space.yaml")  # imports: registers the format
        fmt = get_format("npy_pairs")
        assert isinstance(fmt, DataFormat) and fmt.example(root) == str(root)
        check_format("npy_pairs")  # the kit holds it to the contract the built-ins keep
        # loading: the registry finds the format of data.root, the one split contract splits it
        cfg0 = space.build(space.corner_params()[0])
        assert cfg0.data.root == str(root) and detect_format(cfg0.data.root) is fmt
        splits = load_splits(cfg0.data, num_classes=cfg0.model.num_classes)
        assert {s: len(d) for s, d in splits.items()} == {"train": 4, "val": 2, "test": 2}
        assert splits["train"].images.shape[1:] == (1, 16, 16)
        # training one step
        cfg = space.build(space.corner_params()[0], data=splits)
        torch.manual_seed(0)
        model = PLNet.from_config(cfg.model)
        run = tmp_path / "run"
        result = fit(model, splits["train"], splits["val"], cfg.train, out_dir=run, run_config=cfg)
        assert result is not None and (run / "best.pt").is_file()
        # predict: the folder's .npy files found and read by the format, PNG masks out at each file's size
        pred = predict_checkpoint(run / "best.pt", root, tmp_path / "pred")
        assert [Path(p).name for p in pred["masks"]] == [f"ex_{i:03d}.png" for i in range(8)]
        from PIL import Image

        assert np.asarray(Image.open(pred["masks"][0])).shape == (24, 24)
        # evaluate: the run's own test split, and every sample of the folder
        test = evaluate_checkpoint(run / "best.pt", split="test")
        every = evaluate_checkpoint(run / "best.pt", data=root, split="all")
        assert test["split"] == "test" and every["split"] == "all" and 0.0 <= every["dice"] <= 1.0
        # Segmenter: a path in the new format, as any image path
        seg = plsearch.Segmenter(plsearch.load(run / "best.pt"))
        labels = seg.predict(str(root / "x" / "ex_003.npy"))
        assert labels.shape == (24, 24) and labels.dtype == np.uint8
        same = seg.predict(np.load(root / "x" / "ex_003.npy"))  # the array the format reads
        np.testing.assert_array_equal(labels, same)
    finally:
        FORMATS.unregister("npy_pairs")
        sys.modules.pop("plsearch_plugin_npy_format", None)
    assert detect_format(root).name == "folder"  # unregistered: the folder is nobody's again
