"""PLNet forward contract: shapes, modes, sizes, gradients, determinism, 2D/3D, binary/multi-class."""

from __future__ import annotations

import pytest
import torch

from plsearch import PLNet, create_model, list_models
from plsearch.config.registry import BLOCKS

SMALL = {"base_width": 4}


def small(name: str = "plnet", **kw) -> PLNet:
    torch.manual_seed(0)
    return create_model(name, **{**SMALL, **kw})


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("num_classes", [1, 3])
def test_train_returns_stage_logits_eval_returns_fused(name, num_classes):
    m = small(name, num_classes=num_classes)
    x = torch.randn(2, 3, 32, 32)
    outs = m.train()(x)
    assert isinstance(outs, list) and len(outs) == m.config.stages
    assert all(o.shape == (2, num_classes, 32, 32) for o in outs)
    with torch.no_grad():
        fused = m.eval()(x)
        stages = m.forward_stages(x)
    assert fused.shape == (2, num_classes, 32, 32)
    assert torch.allclose(fused, torch.stack(stages).sum(0), atol=1e-5)  # eq. 5: equal-weight sum


@pytest.mark.parametrize("size", [(33, 47), (37, 64), (50, 35)])
@pytest.mark.parametrize("plan", ["table1", "bionet"])
def test_odd_sizes_are_padded_and_cropped(size, plan):
    m = small(plan=plan).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, *size))
    assert y.shape == (1, 1, *size)


def test_too_small_input_is_rejected_with_usable_sizes():
    m = small().eval()
    with pytest.raises(ValueError, match="at least 16"):
        m(torch.randn(1, 3, 8, 32))
    with pytest.raises(ValueError, match="expected"):
        m(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("num_classes", [1, 2])
def test_3d_volumes(num_classes):
    m = small(spatial_dims=3, num_classes=num_classes, depth=4, in_channels=1)
    x = torch.randn(2, 1, 16, 20, 17)
    outs = m.train()(x)
    assert [tuple(o.shape) for o in outs] == [(2, num_classes, 16, 20, 17)] * 2
    with torch.no_grad():
        assert m.eval()(x).shape == (2, num_classes, 16, 20, 17)


CONFIGS = [
    {},
    {"plan": "bionet", "integrate": True, "ipl": "recurrent", "iterations": 2},
    {"stages": 3, "steps": 3},
    {"fsc": [True, False, True, False], "bsc": [False, True, True, True]},
    {"ipl": "stacked", "up": "convt2_half"},
    {"stages": 1, "bsc": False, "transition": "none", "stem": 0},
] + [{"block": b} for b in sorted(BLOCKS)]


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "default")
def test_every_parameter_gets_a_gradient(overrides):
    m = small(**overrides).train()
    x = torch.randn(2, 3, 32, 32)
    loss = sum(o.square().mean() for o in m(x))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no (finite) gradient for {missing[:5]}"
    assert sum(p.grad.abs().sum() for p in m.parameters()) > 0


def test_eval_is_deterministic_and_changes_no_state():
    m = small()
    m.train()(torch.randn(4, 3, 32, 32))  # give BN running stats some values
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = m(x), m(x)
    assert torch.equal(a, b)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.isfinite(a).all()


def test_fusion_last_skips_lower_heads_in_eval():
    m = small(fusion="last", plan="bionet")
    eval_layers = {op.layer for op in m.wiring.needed_ops(training=False)}
    train_layers = {op.layer for op in m.wiring.needed_ops(training=True)}
    assert "head0" in train_layers and "head0" not in eval_layers
    eval_states = {op.state for op in m.wiring.needed_ops(training=False)}
    assert "s0.post0" not in eval_states  # stage 1's post block only fed its dropped head
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m.eval()(x), m.forward_stages(x)[-1])


def test_from_config_rebuilds_identical_model():
    m = small(ocs=0.75, steps=3)
    clone = PLNet.from_config(m.config.to_dict())
    clone.load_state_dict(m.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), clone.eval()(x))
    assert clone.config == m.config


def test_constructor_defaults_are_the_paper_network():
    assert PLNet().config == create_model("plnet").config
    cfg = PLNet().config
    assert (cfg.steps, cfg.stages, cfg.ocs, cfg.stage_depths, cfg.widths) == (
        2,
        2,
        1.0,
        (4, 5),
        (32, 64, 128, 256, 512),
    )


def test_multiclass_softmax_probabilities_sum_to_one():
    m = small(num_classes=4).eval()
    with torch.no_grad():
        p = PLNet.probabilities(m(torch.randn(2, 3, 32, 32)))
    assert torch.allclose(p.sum(1), torch.ones(2, 32, 32), atol=1e-5)


def test_bsc_weights_start_at_zero_and_norms_follow_keras_momentum():
    m = small()
    c = m.config.widths
    w = m.layers["L1_conv1"].conv.weight  # input [b_1 (BSC), x_1]
    assert torch.count_nonzero(w[:, : c[1]]) == 0 and torch.count_nonzero(w[:, c[1] :]) > 0
    assert all(bn.momentum == 0.99 for bn in m.states.modules() if isinstance(bn, torch.nn.BatchNorm2d))
    he = small(bsc_init="he")
    assert torch.count_nonzero(he.layers["L1_conv1"].conv.weight[:, : c[1]]) > 0
    # The zero branch still learns: its weights get a gradient (the BSC input is not zero).
    m.train()
    sum(o.mean() for o in m(torch.randn(2, 3, 32, 32))).backward()
    assert w.grad[:, : c[1]].abs().sum() > 0
