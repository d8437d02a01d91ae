"""The block contract: shared weights plus per-application state.

IPL runs one level's convs in several passes and stages with shared weights, but every
application gets its own BatchNorm (BiO-Net: "BNs are NOT reusable"). A block therefore owns
only the shared weights; ``make_state()`` returns a fresh module holding what one application
owns (its norms), and ``forward(x, state)`` applies the block with that state.

``params(cin, cout, dims)`` and ``macs(...)`` answer analytically, so a wiring can be costed
without building torch modules; a test holds them equal to the built model and to fvcore.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_nd(dims: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def conv_transpose_nd(dims: int) -> type[nn.Module]:
    return {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]


def norm_nd(dims: int) -> type[nn.Module]:
    return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]


def bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm as ``y = a * x + b``: per-channel ``(a, b)``, each ``(c,)``."""
    a = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        a = a * bn.weight
    b = -bn.running_mean * a
    if bn.bias is not None:
        b = b + bn.bias
    return a.detach(), b.detach()


def conv_fn(dims: int):
    return {2: F.conv2d, 3: F.conv3d}[dims]


def conv_transpose_fn(dims: int):
    return {2: F.conv_transpose2d, 3: F.conv_transpose3d}[dims]


def batch_norm(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """``bn(x)`` as one functional call, for the compiled forward (``plsearch.nn.plan``).

    Skips the module's per-call bookkeeping: the batch counter ``num_batches_tracked`` (unused
    when ``momentum`` is set) is advanced by the caller for all norms at once. Norms with a
    cumulative average (``momentum=None``) or without running stats run as modules.
    """
    if bn.momentum is None or not bn.track_running_stats:
        return bn(x)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training, bn.momentum, bn.eps)


def fast_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, training: bool
) -> torch.Tensor:
    """A stride-1 convolution, on the faster CPU kernel for its size (see ``native_conv_pays``)."""
    if training and x.device.type == "cpu" and native_conv_pays(x, weight):
        return torch._C._nn.thnn_conv2d(x, weight, weight.shape[2:], bias, 1, padding)
    return conv_fn(weight.dim() - 2)(x, weight, bias, padding=padding)


def fast_conv_transpose(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    output_padding: int,
    training: bool,
) -> torch.Tensor:
    """A transposed convolution, on ATen's native kernel where that is faster (the rule of
    ``native_conv_pays``, with MACs counted per input pixel as for ``conv_transpose``).

    ``python benchmarks/tiny_kernels.py --rounds 11`` (one thread, CPU time, forward + backward, batch
    8), BiO-Net's 3x3 stride-2 up unit at 0.3 M MACs: 4 -> 4 channels from 16 px 0.9 ms native against
    1.3 ms on oneDNN; 8 -> 8 from 8 px 0.7 against 0.9; 16 -> 16 from 4 px 0.65 against 0.8;
    32 -> 32 from 2 px even (0.7). Not under ``torch.compile``: inductor may hand
    the kernel a channels-last buffer, and its output strides then differ from what its meta
    kernel promised (an assertion error at the first step).
    """
    if training and x.device.type == "cpu" and not torch.compiler.is_compiling() and native_conv_pays(x, weight):
        return torch._C._nn.slow_conv_transpose2d(x, weight, weight.shape[2:], bias, stride, padding, output_padding)
    conv = conv_transpose_fn(weight.dim() - 2)
    return conv(x, weight, bias, stride=stride, padding=padding, output_padding=output_padding)


def native_conv_pays(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ATen's native (im2col + GEMM) convolution beats oneDNN's for this training conv.

    oneDNN pays a fixed cost per call (reorders to blocked layouts, primitive lookup) that
    dominates tiny convs. Measured on a 2-core AVX2 CPU, one thread, CPU time, forward + backward of
    a 3x3 conv at batch 8 (MACs per call in brackets): 2 -> 2 channels at 32 px (0.3 M) 1.0 ms native
    against 2.0 ms on oneDNN; 4 -> 2 at 32 px (0.6 M) 1.1 against 1.5; 8 -> 4 at 16 px (0.6 M) 1.0
    against 1.2; 16 -> 16 at 4 px (0.3 M) 0.6 against 1.0; 6 -> 2 at 32 px (0.9 M) and 32 -> 32 at
    4 px (1.2 M) even; 24 -> 8 at 8 px (0.9 M) 1.4 against 1.2; 16 -> 16 at 32 px (19 M) 10 against
    5 ms. Hence: native up to ``NATIVE_CONV_MAX_MACS`` per call. 2D only (3D was not measured).
    Rerun the comparison: ``python benchmarks/tiny_kernels.py``.
    """
    if weight.dim() != 4 or not x.is_contiguous():
        return False
    return x.shape[0] * x.shape[2] * x.shape[3] * weight.numel() <= NATIVE_CONV_MAX_MACS


NATIVE_CONV_MAX_MACS = 600_000


def fold_halves(weight: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Weights for the self-concatenation ``conv([x, x])``: ``W1 * x + W2 * x = (W1 + W2) * x``."""
    first, second = weight.chunk(2, dim=dim)
    return first + second


class FusedConv(nn.Module):
    """One application of a conv unit with its eval BatchNorm folded in (inference only).

    ``post`` says what follows the folded conv: ``"none"``, ``"relu"``, or ``"clamp"``, the folded
    form of conv -> ReLU -> BN with scale ``a`` and shift ``b``: for ``a >= 0``,
    ``a * relu(z) + b = max(a * z + b, b)``, so the BN becomes the conv's weights and bias plus a
    per-channel lower bound (one elementwise pass instead of two). Channels with ``a < 0`` use
    ``min`` instead (``sign`` = -1).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        dims: int,
        post: str = "none",
        lower: torch.Tensor | None = None,
        sign: torch.Tensor | None = None,
        transposed: bool = False,
        **conv_kwargs: object,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        shape = (1, -1) + (1,) * dims
        self.register_buffer("lower", None if lower is None else lower.detach().reshape(shape).clone())
        mixed = sign is not None and bool((sign < 0).any())
        self.register_buffer("sign", sign.detach().reshape(shape).clone() if mixed else None)
        self.post, self.dims, self.transposed, self.conv_kwargs = post, dims, transposed, conv_kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = (conv_transpose_fn if self.transposed else conv_fn)(self.dims)
        z = conv(x, self.weight, self.bias, **self.conv_kwargs)
        if self.post == "relu":
            return z.relu_()
        if self.post == "clamp":
            if self.sign is None:
                return z.clamp_min_(self.lower)  # max(a z + b, b): ReLU and BN in one pass
            return torch.maximum(z * self.sign, self.lower * self.sign).mul_(self.sign)
        return z


def fold_conv_bn(
    conv: nn.Module, bn: nn.Module | None, *, dims: int, post: str, self_concat: bool = False, transposed: bool = False
) -> FusedConv:
    """Fold an eval BatchNorm into ``conv`` (out-channel scale and shift) for inference.

    ``post="relu"`` means conv -> BN -> ReLU (BN folds straight in); ``post="clamp"`` means
    conv -> ReLU -> BN (see ``FusedConv``); ``bn=None`` folds nothing. ``self_concat``: the conv
    is applied to ``[x, x]``; the fused unit takes ``x`` alone (half the input channels).
    """
    w = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else None
    if self_concat:
        w = fold_halves(w, dim=0 if transposed else 1)
    lower = sign = None
    if bn is not None:
        a, b = bn_affine(bn)
        scale_shape = (1, -1) if transposed else (-1, 1)
        w = w * a.reshape(scale_shape + (1,) * dims)
        bias = b if bias is None else bias * a + b
        if post == "clamp":
            lower, sign = b, torch.where(a < 0, -1.0, 1.0)
    names = ("stride", "padding", "dilation", "groups") + (("output_padding",) if transposed else ())
    kwargs = {k: getattr(conv, k) for k in names}
    return FusedConv(w, bias, dims=dims, post=post, lower=lower, sign=sign, transposed=transposed, **kwargs)


class Block(nn.Module):
    """A conv unit mapping ``(b, cin, *s)`` to ``(b, cout, *s)`` at the same resolution."""

    block_name: str = ""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__()
        self.cin, self.cout, self.dims = cin, cout, dims

    def make_state(self) -> nn.Module:
        """Per-application parameters and buffers (norms); one per (stage, pass) use."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def input_convs(self) -> list[nn.Module]:
        """The convs that read the block's input (their input channels follow the concatenation)."""
        return [self.conv]

    @torch.no_grad()
    def zero_input_channels(self, channels: slice) -> None:
        """Zero the weights that read input ``channels``: a branch that starts silent (BSC init)."""
        for conv in self.input_convs():
            conv.weight[:, channels] = 0

    def forward_self_concat(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        """``self(cat([x, x], 1), state)``; blocks with one conv on the input override it to run
        that conv once on ``x`` with summed weight halves (exact; half its MACs, no concat copy)."""
        return self(torch.cat([x, x], dim=1), state)

    def fast_forward(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        """``self(x, state)`` for the compiled forward (``plsearch.nn.plan``); ``training`` is the model's mode.

        Built-in blocks override it with functional calls (``batch_norm``, ``fast_conv``); an
        override must apply every BatchNorm of ``state`` through ``batch_norm`` (the plan advances
        their batch counters). The default calls the module, hooks included.
        """
        return self(x, state)

    def fast_self_concat(self, x: torch.Tensor, state: nn.Module, training: bool) -> torch.Tensor:
        """``forward_self_concat`` for the compiled forward (training mode)."""
        if type(self).fast_forward is Block.fast_forward:
            return self.forward_self_concat(x, state)
        return self.fast_forward(torch.cat([x, x], dim=1), state, training)

    def fuse(self, state: nn.Module, *, self_concat: bool = False) -> nn.Module | None:
        """An inference-only module equal to ``self(x, state)`` in eval mode, norms folded in.

        ``self_concat``: the application's input is ``[x, x]``; the returned module takes ``x``.
        ``None`` (the default) means the block has nothing to fold: apply it unfused.
        """
        return None

    @staticmethod
    def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
        """(shared trainable params, trainable params of one application's state)."""
        raise NotImplementedError

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
        """Multiply-adds for one application in eval mode, counted as fvcore does."""
        raise NotImplementedError
