"""The compiled forward (``plsearch.nn.plan``) and the fast kernels equal the reference executor.

Every registered block, 2D and 3D, train and eval, ``forward_stages``, fused inference copies:
outputs, gradients of every parameter and the BatchNorm buffers after a step must match the
reference path (``set_executor("reference")``). In float32 with the native-conv rule off the two
paths run the same kernels and must agree bit for bit; with it on (float64, where rounding cannot
hide a wrong argument) they must agree to 1e-10.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch

import plsearch.nn.blocks.base as base
from plsearch import create_model
from plsearch.config.registry import list_blocks
from plsearch.train.losses import deep_supervision_loss

CASES = [  # (preset, overrides): every plan, up mode, IPL mode and both fusions, kept tiny
    ("plnet", {}),
    ("bionet", {}),
    ("unet", {"base_width": 4}),
    ("plnet", {"stages": 1, "ipl": "stacked", "up": "convt2_half", "bsc": False, "depth": 3}),
]


def _pair(name: str, block: str, dims: int = 2, dtype: torch.dtype = torch.float32, **kw):
    torch.manual_seed(0)
    kw = {"base_width": 2, "block": block, "spatial_dims": dims, **kw}
    if dims == 3:
        kw.update(depth=3, stem=min(kw.get("stem", 1), 1))
    fast = create_model(name, **kw).to(dtype)
    ref = copy.deepcopy(fast).set_executor("reference")
    assert fast.executor == "compiled"
    return fast, ref


def _step(model, x, y):
    outs = model(x)
    deep_supervision_loss(outs, y).backward()
    return [o.detach() for o in outs]


def _compare(fast, ref, x, y, *, exact: bool, tol: float = 0.0):
    def same(a, b):
        if exact:
            assert torch.equal(a, b)
        else:
            assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()

    fast.train(), ref.train()
    for a, b in zip(_step(fast, x, y), _step(ref, x, y), strict=True):
        same(a, b)
    for (name, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            same(p.grad, q.grad)
    for a, b in zip(fast.state_dict().values(), ref.state_dict().values(), strict=True):
        same(a, b)  # running stats and batch counters, after one training forward
    fast.eval(), ref.eval()
    with torch.no_grad():
        same(fast(x), ref(x))
        for a, b in zip(fast.forward_stages(x), ref.forward_stages(x), strict=True):
            same(a, b)


@pytest.mark.parametrize("block", list_blocks())
@pytest.mark.parametrize("name,kw", CASES)
def test_compiled_path_is_bitwise_the_reference_path(monkeypatch, name, kw, block):
    monkeypatch.setattr(base, "NATIVE_CONV_MAX_MACS", 0)  # same kernels on both paths
    fast, ref = _pair(name, block, **kw)
    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, 32, 32) > 0.5
    _compare(fast, ref, x, y, exact=True)


@pytest.mark.parametrize("block", list_blocks())
@pytest.mark.parametrize("dims", [2, 3])
def test_native_convs_equal_the_reference_in_float64(monkeypatch, block, dims):
    monkeypatch.setattr(base, "NATIVE_CONV_MAX_MACS", 10**12)  # every conv on the native kernel
    fast, ref = _pair("plnet", block, dims=dims, dtype=torch.float64)
    s = (2, 3) + (16,) * dims
    x, y = torch.randn(s, dtype=torch.float64), torch.rand(s[:1] + s[2:]) > 0.5
    _compare(fast, ref, x, y, exact=False, tol=1e-10)


def _conv_pair(kind: str, dims: int):
    """(fast kernel, plain torch conv, weight shape, output size) for a 3-channel 8-px input."""
    if kind == "conv":
        return (
            lambda x, w, b: base.fast_conv(x, w, b, 1, True),
            lambda x, w, b: base.conv_fn(dims)(x, w, b, padding=1),
            (4, 3),
            8,
        )
    plain = base.conv_transpose_fn(dims)
    return (
        lambda x, w, b: base.fast_conv_transpose(x, w, b, 2, 1, 1, True),
        lambda x, w, b: plain(x, w, b, stride=2, padding=1, output_padding=1),
        (3, 4),
        16,
    )


@pytest.mark.parametrize("kind", ["conv", "conv_transpose"])
@pytest.mark.parametrize("dims", [2, 3])
def test_fast_kernels_match_torch_in_float32(kind, dims):
    fast, plain, wshape, out = _conv_pair(kind, dims)
    torch.manual_seed(0)
    x = torch.randn((2, 3) + (8,) * dims, requires_grad=True)
    w = torch.randn(wshape + (3,) * dims, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    assert base.native_conv_pays(x, w) == (dims == 2)  # 2D takes the native kernel here, 3D never
    ys = [fast(x, w, b), plain(x, w, b)]
    assert ys[0].shape == ys[1].shape == (2, 4) + (out,) * dims
    grads = [torch.autograd.grad(y.square().sum(), (x, w, b)) for y in ys]
    assert torch.allclose(ys[0], ys[1], atol=1e-5)
    for g, h in zip(*grads):
        assert torch.allclose(g, h, rtol=1e-4, atol=1e-4)


def test_compiled_graphs_keep_conv_transpose_off_the_native_kernel():
    """Inductor may feed the native kernel a channels-last buffer, whose output strides then break
    its meta kernel's promise (an assertion at the first compiled step): compiled graphs keep
    ``conv_transpose2d``, which inductor lowers itself."""
    from plsearch.nn.speed import compile_available

    if not compile_available("cpu"):
        pytest.skip("torch.compile unavailable here")
    seen: list[str] = []

    def capture(gm, example_inputs):
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    x, w = torch.randn(2, 3, 8, 8), torch.randn(3, 4, 3, 3)
    assert base.native_conv_pays(x, w)  # eager training takes the native kernel here
    torch._dynamo.reset()
    fn = torch.compile(
        lambda x, w: base.fast_conv_transpose(x, w, None, 2, 1, 1, True), backend=capture, fullgraph=True
    )
    assert torch.allclose(fn(x, w), torch.nn.functional.conv_transpose2d(x, w, None, 2, 1, 1), atol=1e-5)
    assert any("conv_transpose2d" in t for t in seen), seen
    assert not any("slow_conv_transpose2d" in t for t in seen), seen


def test_a_deepcopy_runs_its_own_weights_not_the_originals():
    m = create_model("plnet", base_width=2).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        m(x)  # builds and caches the plan
        twin = copy.deepcopy(m)
        twin.layers["stem0"].conv.weight.mul_(-1.0)
        assert not torch.allclose(twin(x), m(x))
        twin.set_executor("reference")
        ref_out = twin(x)
        assert torch.equal(twin.set_executor("compiled")(x), ref_out)


def test_fused_copy_and_channels_last_and_pickling_use_the_plan():
    m = create_model("plnet-small", base_width=4).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = m(x)
        fused = m.fuse_for_inference()
        assert torch.allclose(fused(x), want, rtol=1e-4, atol=1e-4)
        assert torch.equal(fused(x), copy.deepcopy(fused).set_executor("reference")(x))
        cl = copy.deepcopy(m).to(memory_format=torch.channels_last)
        assert torch.allclose(cl(x.contiguous(memory_format=torch.channels_last)), want, rtol=1e-4, atol=1e-5)
    buf = io.BytesIO()
    torch.save(m, buf)  # generated code is not pickled
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    with torch.no_grad():
        assert torch.equal(back(x), want)


def test_checkpointing_still_matches_plain_training():
    torch.manual_seed(0)
    m = create_model("plnet", base_width=2)
    ck = copy.deepcopy(m).set_checkpointing(True)
    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, 32, 32) > 0.5
    for a, b in zip(_step(m.train(), x, y), _step(ck.train(), x, y)):
        assert torch.allclose(a, b, atol=1e-5)
    for p, q in zip(m.parameters(), ck.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-4)
    for a, b in zip(m.state_dict().values(), ck.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_plan_source_is_straight_line_and_executor_names_are_checked():
    m = create_model("plnet", base_width=2)
    src = m.compiled_plan(True, True).source
    assert src.startswith("def plan(a0):") and "for " not in src and "cat((" in src
    with pytest.raises(ValueError, match="executor"):
        m.set_executor("fast")
