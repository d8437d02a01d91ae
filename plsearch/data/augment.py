"""Batched geometric augmentation, as in the paper: rotation, shift and flips.

One random affine transform per sample, applied identically to the image (bilinear) and its mask
(nearest), in one ``affine_grid`` + ``grid_sample`` per tensor on the batch's device. Outside the
image is zero (black image, background mask). 2D ``(b, c, h, w)`` and 3D ``(b, c, d, h, w)``
batches work; 3D volumes rotate in the h-w plane.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment_batch", "random_affine"]


def random_affine(
    batch: int,
    spatial: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    rotation_deg: float,
    shift: float,
    flips: bool,
) -> torch.Tensor:
    """Random output->input affine maps in ``affine_grid``'s normalised coordinates.

    Args:
        batch: number of transforms.
        spatial: ``(h, w)`` or ``(d, h, w)``; the rotation is done in pixel units so that it stays a
            rotation on non-square images.
        generator: the source of randomness (its device is where the numbers are drawn).
        rotation_deg: angles uniform in ``[-rotation_deg, rotation_deg]``.
        shift: shifts uniform in ``[-shift, shift]`` times the size along every axis.
        flips: flip horizontally and vertically, each with probability 1/2.

    Returns:
        theta float32 ``(batch, n, n + 1)`` with n = len(spatial), on the generator's device.
    """
    n = len(spatial)
    device = generator.device if generator is not None else torch.device("cpu")
    # always draw the same numbers, so that changing one amount does not reshuffle the others
    r = torch.rand((batch, 6), generator=generator, device=device)
    angle = (2 * r[:, 0] - 1) * math.radians(rotation_deg)
    flip = torch.where(r[:, 1:3] < 0.5, -1.0, 1.0) if flips else torch.ones((batch, 2), device=device)
    cos, sin = angle.cos(), angle.sin()
    h, w = spatial[-2], spatial[-1]
    theta = torch.zeros((batch, n, n + 1), device=device)
    # x_in = R x_out in pixels; normalised u = x / (size / 2), so u_in = D^-1 R D u_out
    theta[:, 0, 0] = cos * flip[:, 0]
    theta[:, 0, 1] = -sin * (h / w) * flip[:, 1]
    theta[:, 1, 0] = sin * (w / h) * flip[:, 0]
    theta[:, 1, 1] = cos * flip[:, 1]
    if n == 3:
        theta[:, 2, 2] = 1.0
    theta[:, :, n] = (2 * r[:, 3 : 3 + n] - 1) * (2 * shift)  # the normalised range [-1, 1] is 2 wide
    return theta


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator | None,
    rotation_deg: float = 25.0,
    shift: float = 0.15,
    flips: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate, shift and flip every (image, mask) pair by the same random transform.

    Args:
        x: float images ``(b, c, h, w)`` or volumes ``(b, c, d, h, w)``.
        y: integer masks ``(b, h, w)`` / ``(b, d, h, w)`` (or with a channel dim, like x).
        generator: makes the transforms reproducible; a CPU generator works for any x device.
        rotation_deg: maximum rotation in degrees (0 = none).
        shift: maximum shift as a fraction of the size (0 = none).
        flips: random horizontal and vertical flips.

    Returns:
        ``(x, y)`` with the input shapes, dtypes and device.
    """
    if x.dim() not in (4, 5):
        raise ValueError(f"x must be (b, c, h, w) or (b, c, d, h, w), got shape {tuple(x.shape)}")
    spatial = tuple(x.shape[2:])
    channel_dim = y.dim() == x.dim()
    if tuple(y.shape[-len(spatial) :]) != spatial or y.shape[0] != x.shape[0] or y.dim() not in (x.dim(), x.dim() - 1):
        raise ValueError(f"mask shape {tuple(y.shape)} does not fit image shape {tuple(x.shape)}")
    b = x.shape[0]
    theta = random_affine(b, spatial, generator=generator, rotation_deg=rotation_deg, shift=shift, flips=flips)
    if rotation_deg == 0 and shift == 0:
        if not flips:
            return x, y
        # flips only: exact, and cheaper than resampling
        fw = (theta[:, 0, 0] < 0).to(x.device)
        fh = (theta[:, 1, 1] < 0).to(x.device)
        return _flip(x, fw, fh), _flip(y, fw, fh)
    theta = theta.to(x.device)
    grid = F.affine_grid(theta, [b, 1, *spatial], align_corners=False)
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) or x.is_cuda else torch.float32
    xa = F.grid_sample(x.to(compute), grid.to(compute), mode="bilinear", padding_mode="zeros", align_corners=False)
    ym = y if channel_dim else y.unsqueeze(1)
    # nearest on float class indices is exact for indices < 2**24
    ya = F.grid_sample(ym.float(), grid.float(), mode="nearest", padding_mode="zeros", align_corners=False)
    ya = ya.round().to(y.dtype)
    return xa.to(x.dtype), ya if channel_dim else ya.squeeze(1)


def _flip(t: torch.Tensor, fw: torch.Tensor, fh: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (t.dim() - 1)
    t = torch.where(fw.view(shape), t.flip(-1), t)
    return torch.where(fh.view(shape), t.flip(-2), t)
