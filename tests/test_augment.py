from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plsearch.data.augment import augment_batch, random_affine


def _smooth(b: int, c: int, *spatial: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [0, 1] (so that thresholding gives large, aligned regions)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((b, c) + tuple(max(2, s // 8) for s in spatial), generator=g)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    return F.interpolate(coarse, size=spatial, mode=mode, align_corners=False)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identity_when_all_amounts_are_zero():
    x = torch.rand(3, 2, 16, 20)
    y = torch.randint(0, 3, (3, 16, 20))
    xa, ya = augment_batch(x, y, generator=_gen(), rotation_deg=0, shift=0, flips=False)
    assert torch.equal(xa, x) and torch.equal(ya, y)


def test_flips_only_are_exact_flips():
    x = torch.rand(16, 3, 12, 10)
    y = torch.randint(0, 2, (16, 12, 10))
    xa, ya = augment_batch(x, y, generator=_gen(1), rotation_deg=0, shift=0, flips=True)
    kinds = set()
    for i in range(16):
        match = [
            (fw, fh)
            for fw in (False, True)
            for fh in (False, True)
            if torch.equal(xa[i], _flip(x[i], fw, fh)) and torch.equal(ya[i], _flip(y[i], fw, fh))
        ]
        assert len(match) == 1, f"sample {i} is not an exact flip of its input"
        kinds.add(match[0])
    assert len(kinds) >= 3  # 16 samples: the four flip combinations all show up (p = 1 - ~0.04)


def _flip(t: torch.Tensor, fw: bool, fh: bool) -> torch.Tensor:
    t = t.flip(-1) if fw else t
    return t.flip(-2) if fh else t


def test_resampling_path_agrees_with_flip_path():
    # A tiny rotation takes the affine_grid path; with the same generator it must flip the same way.
    x = torch.rand(8, 1, 16, 16)
    y = torch.randint(0, 4, (8, 16, 16))
    xf, yf = augment_batch(x, y, generator=_gen(2), rotation_deg=0, shift=0, flips=True)
    xr, yr = augment_batch(x, y, generator=_gen(2), rotation_deg=1e-4, shift=0, flips=True)
    assert torch.allclose(xr, xf, atol=1e-3)
    assert torch.equal(yr, yf)


@pytest.mark.parametrize("spatial", [(48, 48), (40, 56)])
def test_image_and_mask_stay_aligned(spatial):
    x = _smooth(12, 1, *spatial)
    y = (x[:, 0] > 0.5).long()
    xa, ya = augment_batch(x, y, generator=_gen(3), rotation_deg=30, shift=0.15, flips=True)
    assert xa.shape == x.shape and ya.shape == y.shape and ya.dtype == torch.int64
    assert not torch.allclose(xa, x)  # something happened
    clear = (xa[:, 0] - 0.5).abs() > 0.05  # away from interpolated borders
    agree = ((xa[:, 0] > 0.5).long() == ya)[clear].float().mean()
    assert agree > 0.995, agree
    assert ((xa[:, 0] > 0.5).long() == ya).float().mean() > 0.95


def test_rotation_is_rigid_on_non_square_images():
    h, w = 32, 64
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    square = ((yy - 16).abs() < 8) & ((xx - 40).abs() < 8)  # off-centre 16x16 square
    y = square.long().expand(64, h, w).contiguous()
    x = y[:, None].float()
    _, ya = augment_batch(x, y, generator=_gen(9), rotation_deg=45, shift=0, flips=False)
    area = ya.flatten(1).sum(1).float()
    assert (area / 256).sub(1).abs().max() < 0.12  # area kept: no stretching along either axis
    rows, cols = ya.any(2).sum(1).float(), ya.any(1).sum(1).float()
    assert (rows - cols).abs().max() <= 2  # a rotated square has equal height and width extents
    assert rows.max() > 20  # and some were rotated by a good angle (16 * sqrt(2) at 45 degrees)


def test_deterministic_given_generator_and_differs_per_sample():
    x = _smooth(6, 3, 32, 32)
    y = (x[:, 0] > 0.5).long()
    a = augment_batch(x, y, generator=_gen(7), rotation_deg=25, shift=0.1, flips=True)
    b = augment_batch(x, y, generator=_gen(7), rotation_deg=25, shift=0.1, flips=True)
    c = augment_batch(x, y, generator=_gen(8), rotation_deg=25, shift=0.1, flips=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    same = x[:1].expand_as(x).contiguous()  # same input everywhere: outputs differ per sample
    out, _ = augment_batch(same, y, generator=_gen(7), rotation_deg=25, shift=0.1, flips=True)
    assert not torch.allclose(out[0], out[1])


def test_rotation_and_shift_stay_within_amounts():
    theta = random_affine(2000, (32, 32), generator=_gen(), rotation_deg=20, shift=0.1, flips=False)
    angle = torch.atan2(theta[:, 1, 0], theta[:, 0, 0]).rad2deg()
    assert angle.abs().max() <= 20 + 1e-4 and angle.abs().max() > 18
    assert theta[:, :, 2].abs().max() <= 0.2 + 1e-6  # 0.1 of the size = 0.2 in [-1, 1] units
    det = torch.linalg.det(theta[:, :, :2])
    assert torch.allclose(det, torch.ones_like(det), atol=1e-5)  # rotation, no scaling


def test_mask_values_stay_class_indices_and_padding_is_background():
    x = torch.ones(4, 1, 24, 24)
    y = torch.full((4, 24, 24), 2, dtype=torch.long)
    xa, ya = augment_batch(x, y, generator=_gen(4), rotation_deg=45, shift=0.2, flips=True)
    assert set(ya.unique().tolist()) <= {0, 2}
    assert (ya == 0).any()  # shifted/rotated in from outside: background
    outside = ya == 0
    assert xa[:, 0][outside].mean() < 0.5  # zeros padding in the image where the mask is padded


def test_mask_with_channel_dim_and_uint8():
    x = _smooth(3, 1, 20, 20)
    y = (x > 0.5).to(torch.uint8)  # (b, 1, h, w)
    xa, ya = augment_batch(x, y, generator=_gen(), rotation_deg=10, shift=0.1, flips=True)
    assert ya.shape == y.shape and ya.dtype == torch.uint8


def test_volumes_rotate_in_plane_and_stay_aligned():
    x = _smooth(4, 1, 16, 48, 48)
    y = (x[:, 0] > 0.5).long()
    xa, ya = augment_batch(x, y, generator=_gen(5), rotation_deg=30, shift=0.1, flips=True)
    assert xa.shape == x.shape and ya.shape == y.shape
    clear = (xa[:, 0] - 0.5).abs() > 0.05
    assert ((xa[:, 0] > 0.5).long() == ya)[clear].float().mean() > 0.98


def test_volume_without_shift_is_the_same_2d_transform_on_every_slice():
    x = _smooth(3, 1, 6, 24, 24)
    y = (x[:, 0] > 0.5).long()
    xa, _ = augment_batch(x, y, generator=_gen(6), rotation_deg=30, shift=0, flips=True)
    theta = random_affine(3, (6, 24, 24), generator=_gen(6), rotation_deg=30, shift=0, flips=True)
    assert torch.equal(theta[:, 2], torch.tensor([[0.0, 0.0, 1.0, 0.0]]).expand(3, 4))  # depth untouched
    t2 = theta[:, :2][:, :, [0, 1, 3]].repeat_interleave(6, 0)
    slices = x.transpose(1, 2).reshape(18, 1, 24, 24)
    grid = F.affine_grid(t2, [18, 1, 24, 24], align_corners=False)
    ref = F.grid_sample(slices, grid, align_corners=False).reshape(3, 6, 1, 24, 24).transpose(1, 2)
    assert torch.allclose(xa, ref, atol=1e-5)
    xf, _ = augment_batch(x, y, generator=_gen(5), rotation_deg=0, shift=0, flips=True)
    for i in range(3):  # flips never touch the depth axis
        assert any(torch.equal(xf[i], _flip(x[i], fw, fh)) for fw in (0, 1) for fh in (0, 1))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="mask shape"):
        augment_batch(torch.rand(2, 1, 8, 8), torch.zeros(2, 8, 9, dtype=torch.long), generator=None)
    with pytest.raises(ValueError, match="x must be"):
        augment_batch(torch.rand(8, 8), torch.zeros(8, 8, dtype=torch.long), generator=None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_tensors_device():
    x = _smooth(4, 3, 32, 32).cuda()
    y = (x[:, 0] > 0.5).long()
    xa, ya = augment_batch(x, y, generator=_gen(), rotation_deg=20, shift=0.1, flips=True)
    assert xa.is_cuda and ya.is_cuda
    xc, yc = augment_batch(x.cpu(), y.cpu(), generator=_gen(), rotation_deg=20, shift=0.1, flips=True)
    assert torch.allclose(xa.cpu(), xc, atol=1e-4)
    assert (ya.cpu() == yc).float().mean() > 0.99
