"""plsearch.load and Segmenter: 2D and 3D, resize and sliding-window modes, NIfTI out with the affine."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import plsearch
from plsearch.config.presets import preset_config
from plsearch.config.schema import DataConfig, RunConfig, to_dict
from plsearch.infer.segmenter import Preprocessing, Segmenter, _starts
from plsearch.nn.checkpoint import save_checkpoint
from plsearch.nn.model import PLNet


def _tiny(dims: int, **kw) -> PLNet:
    torch.manual_seed(0)
    cfg = preset_config(
        "plnet-small",
        base_width=4,
        depth=3,
        spatial_dims=dims,
        in_channels=kw.pop("c", 1),
        num_classes=kw.pop("k", 1),
        **kw,
    )
    model = PLNet.from_config(cfg)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval differs from train mode
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _checkpoint(tmp_path, model: PLNet, size: int, **data) -> str:
    run = RunConfig(model=model.config, data=DataConfig(image_size=size, **data))
    path = save_checkpoint(
        tmp_path / "run" / "best.pt", model.state_dict(), model_config=model.config.to_dict(), run_config=to_dict(run)
    )
    return str(path)


class _Pointwise(nn.Module):
    """A per-voxel network: tiled and whole-input predictions must agree exactly."""

    def __init__(self, c: int, k: int, dims: int) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = conv(c, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_load_returns_eval_model_with_preprocessing(tmp_path):
    model = _tiny(2, c=3)
    path = _checkpoint(tmp_path, model, 32, grey_world=True)
    loaded = plsearch.load(path)
    assert not loaded.training and loaded.preprocessing.image_size == 32 and loaded.preprocessing.grey_world
    assert loaded.preprocessing.in_channels == 3 and loaded.preprocessing.spatial_dims == 2
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert plsearch.load(tmp_path / "run").checkpoint_path == path  # a run folder works too


def test_2d_resize_mode_matches_the_training_transform(tmp_path):
    model = _tiny(2, c=3, k=3)
    seg = Segmenter(plsearch.load(_checkpoint(tmp_path, model, 32)), batch_size=2)
    assert seg.mode == "resize"
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (3, 50, 70), dtype=np.uint8),
        rng.integers(0, 256, (3, 24, 40), dtype=np.uint8),
        rng.integers(0, 256, (3, 32, 32), dtype=np.uint8),
    ]
    masks = seg.predict(images)
    for img, mask in zip(images, masks):
        x = torch.from_numpy(img).float()[None] / 255
        small = F.interpolate(
            x, size=(32, 32), mode="bilinear", align_corners=False, antialias=img.shape[1] > 32 or img.shape[2] > 32
        )
        logits = F.interpolate(model(small), size=img.shape[1:], mode="bilinear", align_corners=False)
        assert mask.shape == img.shape[1:] and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, logits.argmax(1)[0].numpy())


@pytest.mark.parametrize("dims, shape", [(2, (3, 45, 61)), (3, (1, 21, 17, 13))])
def test_sliding_window_blends_tiles_exactly(dims, shape):
    torch.manual_seed(1)
    net = _Pointwise(shape[0], 3, dims).eval()
    pre = Preprocessing(spatial_dims=dims, in_channels=shape[0], num_classes=3)
    seg = Segmenter(net, mode="sliding", tile=8, overlap=0.5, batch_size=3, preprocessing=pre)
    x = torch.randn(shape)
    got = seg.logits(x)
    torch.testing.assert_close(got, net(x[None])[0], rtol=1e-5, atol=1e-5)
    if dims == 3:  # raw intensities are z-scored, as in training
        x = x * 300 + 1000
    labels = seg.predict(x.numpy() if dims == 3 else x)
    want = net(((x - x.mean()) / x.std(unbiased=False))[None] if dims == 3 else x[None]).argmax(1)[0]
    assert (labels == want.numpy()).mean() > 0.999


def test_tile_comes_from_the_memory_estimate():
    from plsearch.graph.memory import activation_bytes, largest_side

    model = _tiny(3)
    budget = activation_bytes(model.config, 16, batch=2) + 1
    seg = Segmenter(model, mode="sliding", batch_size=2, memory_bytes=budget)
    assert seg.tile == largest_side(model.config, budget, batch=2) == 16
    out = seg.predict(np.random.default_rng(0).normal(size=(40, 33, 20)).astype(np.float32))
    assert out.shape == (40, 33, 20)
    with pytest.raises(ValueError, match="memory_bytes"):
        Segmenter(model, mode="sliding", memory_bytes=10)


def test_starts_cover_the_input():
    assert _starts(10, 16, 8) == [0]
    assert _starts(20, 8, 4) == [0, 4, 8, 12]
    assert _starts(21, 8, 4) == [0, 4, 8, 12, 13]


def test_volume_paths_in_nifti_out_with_the_affine(tmp_path):
    model = _tiny(3, k=3)
    seg = Segmenter(plsearch.load(_checkpoint(tmp_path, model, 16)))
    affine = np.diag([0.9, 1.1, 2.0, 1.0])
    affine[:3, 3] = [5.0, -3.0, 12.0]
    vol = np.random.default_rng(0).normal(500, 80, size=(19, 23, 11)).astype(np.float32)
    src = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), str(src))
    out = seg.predict_file(src, tmp_path / "pred" / "case.nii.gz")
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, affine)
    labels = np.asarray(back.dataobj)
    assert labels.shape == vol.shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, seg.predict(str(src)))
    np.testing.assert_array_equal(labels, seg.predict(vol))  # an array gets the same z-score


def test_bad_inputs_are_named():
    seg = Segmenter(_tiny(2, c=3))
    with pytest.raises(ValueError, match="channels"):
        seg.predict(np.zeros((1, 20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"\(h, w\) or \(c, h, w\)"):
        seg.predict(np.zeros((1, 1, 20, 20), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        Segmenter(_tiny(2), mode="tiles")


def test_predict_cli_writes_nifti_with_each_inputs_affine(tmp_path, capsys):
    from plsearch.cli.predict import main

    model = _tiny(3, k=3)
    ckpt = _checkpoint(tmp_path, model, 16)
    folder = tmp_path / "vols" / "imagesTs"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    affines = []
    for i, shape in enumerate([(18, 20, 9), (15, 21, 12)]):
        affine = np.diag([1.0 + i, 0.8, 2.0, 1.0])
        affine[:3, 3] = [i, -2.0, 7.0]
        affines.append(affine)
        nib.save(nib.Nifti1Image(rng.normal(size=shape).astype(np.float32), affine), str(folder / f"c{i}.nii.gz"))
    assert main(["--checkpoint", ckpt, "--input", str(tmp_path / "vols"), "--out", str(tmp_path / "pred")]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 masks" in captured.out
    assert "predict: 2/2 file (100%)" in captured.err  # plain progress lines: stderr is not a terminal here
    for i, affine in enumerate(affines):
        back = nib.load(str(tmp_path / "pred" / f"c{i}.nii.gz"))
        np.testing.assert_allclose(back.affine, affine)
        assert back.shape == nib.load(str(folder / f"c{i}.nii.gz")).shape


@pytest.mark.parametrize("mode", ["resize", "sliding"])
def test_predict_builds_no_autograd_graph(mode):
    """Without no_grad the tiles' graphs were kept: a 512x512 image took 7 GB (benchmarks/segmenter_memory.py)."""
    seen = []

    class Spy(_Pointwise):
        def forward(self, x):
            seen.append(torch.is_grad_enabled())
            return super().forward(x)

    net = Spy(1, 2, 2)
    seg = Segmenter(net, mode=mode, tile=8, preprocessing=Preprocessing(2, 1, 2, image_size=8))
    with torch.enable_grad():
        seg.predict(np.zeros((20, 20), np.float32))
    assert seen and not any(seen)


@pytest.mark.parametrize("k", [1, 3])
def test_labels_in_slabs_match_logits_to_labels(k):
    from plsearch.infer.segmenter import _labels
    from plsearch.train.metrics import logits_to_labels

    lg = torch.randn(k, 7, 5, 6)
    got = _labels(lg, slab_voxels=40)  # slabs of one 5x6 plane: 7 slabs
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, logits_to_labels(lg[None])[0].numpy())


def test_zscore_matches_float64_and_keeps_float32():
    from plsearch.data.volume import zscore

    rng = np.random.default_rng(0)
    v = np.stack([rng.normal(1.7e6, 3e4, (9, 8, 7)), np.full((9, 8, 7), 5.0)]).astype(np.float32)
    z = zscore(v, slab_voxels=50)  # several slabs per channel
    want = (v[0].astype(np.float64) - v[0].mean(dtype=np.float64)) / v[0].std(dtype=np.float64)
    assert z.dtype == np.float32 and z.shape == v.shape
    np.testing.assert_allclose(z[0], want, atol=1e-3)
    assert (z[1] == 0).all()  # a constant channel
