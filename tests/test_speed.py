"""Speed switches change time, never results: fused inference, channels_last, checkpointing, compile."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from plsearch import create_model
from plsearch.config.registry import BLOCKS
from plsearch.nn.blocks import Block
from plsearch.nn.speed import (
    autocast,
    compile_available,
    compile_model,
    configure_backends,
    fuse_for_inference,
    matmul_peak_flops,
    to_channels_last,
)
from plsearch.train.losses import deep_supervision_loss

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: on a shared 2-core machine two threads make these ops many times slower.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def trained_like(name: str = "plnet", **kw) -> nn.Module:
    """A tiny model whose BatchNorms hold non-trivial statistics and affine values (some negative)."""
    torch.manual_seed(0)
    m = create_model(name, **{"base_width": 4, **kw}).train()
    dims = m.config.spatial_dims
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(2, m.config.in_channels, *([32] * dims)))
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(-1.0, 1.5)  # negative scales exercise the clamp's min branch
                mod.bias.uniform_(-0.5, 0.5)
    return m.eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize(
    "name, kw",
    [
        ("plnet", {}),
        ("plnet", {"block": "convbnrelu"}),
        ("plnet", {"block": "residual", "steps": 3}),
        ("bionet", {}),
        ("unet", {}),
        ("plnet", {"spatial_dims": 3, "depth": 3, "in_channels": 1}),
    ],
    ids=["plnet", "convbnrelu", "residual", "bionet", "unet", "3d"],
)
def test_fused_inference_equals_unfused(name, kw):
    m = trained_like(name, **kw)
    fused = fuse_for_inference(m)
    shape = (2, m.config.in_channels) + ((36, 40) if m.config.spatial_dims == 2 else (16, 16, 16))
    x = torch.randn(shape)
    with torch.no_grad():
        assert rel_err(m(x), fused(x)) < 1e-4
    assert fused.fused is not None and len(fused.fused) > 0
    assert m.fused is None and not m.training  # the original is untouched


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_self_concatenation_shortcut_equals_concat_in_training(name):
    torch.manual_seed(0)
    block = BLOCKS[name](8, 4, 2)
    s1 = block.make_state()
    s2 = copy.deepcopy(s1)
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    fast = block.forward_self_concat(x, s1)  # overridden: one conv on x with summed weight halves
    slow = Block.forward_self_concat(block, x, s2)  # the definition: the block on cat([x, x])
    assert rel_err(slow, fast) < 1e-5
    r = torch.randn_like(fast)  # a loss whose gradient BN's scale invariance does not cancel
    g_fast = torch.autograd.grad((fast * r).sum(), [x, *block.parameters()])
    g_slow = torch.autograd.grad((slow * r).sum(), [x, *block.parameters()])
    assert all(rel_err(b, a) < 1e-4 for a, b in zip(g_fast, g_slow))
    for a, b in zip(s1.state_dict().values(), s2.state_dict().values()):  # running stats alike
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6)


def test_fused_self_concatenation_runs_on_half_the_channels():
    m = trained_like("plnet")
    fused = m.fuse_for_inference()
    first = fused.fused["s0p0_L0_conv1"]  # input [x0, x0] (eq. 2, first pass)
    assert first.weight.shape[1] == m.layers["L0_conv1"].conv.weight.shape[1] // 2
    with pytest.raises(RuntimeError, match="eval mode only"):
        fused.train()(torch.randn(1, 3, 32, 32))
    with pytest.raises(TypeError, match="PLNet"):
        fuse_for_inference(nn.Conv2d(1, 1, 3))


def test_channels_last_gives_the_same_outputs():
    m = trained_like("plnet")
    ref = copy.deepcopy(m)
    x = torch.randn(2, 3, 32, 32)
    cl, xc = to_channels_last(m), to_channels_last(x)
    assert xc.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert rel_err(ref(x), cl(xc)) < 1e-4
    # Training mode: CPU channels-last BatchNorm computes batch statistics ~100x less accurately
    # (~1e-6 relative), which a chain of BNs amplifies; a shallow net keeps that visible but small.
    torch.manual_seed(0)
    m = create_model("plnet", base_width=8, stages=1, depth=3).train()
    ref = copy.deepcopy(m)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(ref(x)[0], to_channels_last(m)(to_channels_last(x))[0]) < 1e-2


def _step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = deep_supervision_loss(m(x), y)
    loss.backward()
    return loss.detach()


def test_checkpointing_gives_the_same_loss_grads_and_running_stats():
    base = trained_like("plnet", stages=3, steps=3).train()
    ckpt = copy.deepcopy(base).set_checkpointing(True)
    assert ckpt.checkpointing and not base.checkpointing
    x, y = torch.randn(2, 3, 32, 32), (torch.rand(2, 32, 32) > 0.5).long()
    assert torch.equal(_step(base, x, y), _step(ckpt, x, y))
    for (name, p), q in zip(base.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), name
    for (name, a), b in zip(base.state_dict().items(), ckpt.state_dict().values()):
        assert torch.equal(a, b), name  # running stats updated once, not again by the recomputation
    with torch.no_grad():  # eval and no-grad paths ignore the switch
        assert torch.equal(base.eval()(x), ckpt.eval()(x))


def test_peak_autocast_and_backends_on_cpu():
    assert matmul_peak_flops("cpu", n=256, repeats=2) > 1e8
    with autocast("cpu"):
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32  # no bf16 on CPU
    configure_backends("cpu")  # no-op, must not raise


def test_compile_model_falls_back_when_unavailable(monkeypatch, caplog):
    import plsearch.nn.speed as speed

    monkeypatch.setattr(speed, "compile_available", lambda device="cpu": False)
    m = nn.Conv2d(1, 1, 1)
    assert speed.compile_model(m) is m
    assert "not available" in caplog.text


@pytest.mark.slow
@pytest.mark.skipif(not compile_available("cpu"), reason="torch.compile unavailable here")
def test_compiled_model_matches_eager():
    torch.manual_seed(0)
    m = create_model("unet", base_width=4, depth=3).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = m(x)
        out = compile_model(m)(x)
    assert rel_err(ref, out) < 1e-4


@pytest.mark.gpu
@gpu
def test_gpu_bf16_channels_last_train_step_and_fused_inference():
    configure_backends("cuda")
    assert torch.backends.cudnn.benchmark
    m = to_channels_last(trained_like("plnet").cuda().train())
    x = to_channels_last(torch.randn(4, 3, 64, 64, device="cuda"))
    y = (torch.rand(4, 64, 64, device="cuda") > 0.5).long()
    with autocast("cuda"):
        outs = m(x)
    assert all(o.dtype == torch.bfloat16 for o in outs)
    loss = deep_supervision_loss(outs, y)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in m.parameters())
    m.eval()
    with torch.no_grad():
        assert rel_err(m(x), fuse_for_inference(m)(x)) < 1e-4
    assert matmul_peak_flops("cuda", n=2048, repeats=2) > 1e12
