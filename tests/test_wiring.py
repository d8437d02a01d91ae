"""The wiring as data: eq. 1-3 semantics, EPL sharing, and analytic cost equal to the built model."""

from __future__ import annotations

import pytest
import torch

from plsearch import build_wiring, create_model, estimate, preset_config
from plsearch.config.registry import BLOCKS
from plsearch.nn.profile import count_macs


def ops_by_state(cfg):
    return {op.state: op for op in build_wiring(cfg).ops if op.state}


def test_bsc_sources_follow_the_paper_table():
    ops = ops_by_state(preset_config("plnet"))
    # Stage 1 pass 1: self-concatenation [x_l, x_l] (eq. 2, case s=1 of stage 1).
    assert ops["s0p0.L0.conv1"].inputs == ("x0", "x0") or ops["s0p0.L0.conv1"].edges[0] == "self"
    # Stage 1 pass 2: previous pass's decoder output d_l; at its bottleneck L3, e_3.
    assert ops["s0p1.L1.conv1"].inputs[0] == "s0p0.d1"
    assert ops["s0p1.L3.conv1"].inputs[0] == "s0p0.e3"
    # Stage 2 pass 1: stage 1's LAST pass feeds every BSC (eq. 2, case s=1 of stage 2).
    assert ops["s1p0.L0.conv1"].inputs[0] == "s0p1.d0"
    assert ops["s1p0.L3.conv1"].inputs[0] == "s0p1.e3"
    # Stage 2 pass 2: its own previous pass, D3 included; the deepest level L4 has no BSC.
    assert ops["s1p1.L3.conv1"].inputs[0] == "s1p0.d3"
    assert ops["s1p1.L4.conv1"].inputs == ("s1p1.x4",)
    # FSC (eq. 1): the decoder's first conv sees [e_l, u_l] of the same pass.
    assert ops["s1p1.D2.conv1"].inputs == ("s1p1.e2", "s1p1.u2")


def test_progressive_ipl_pass_s_uses_first_s_convs():
    ops = ops_by_state(preset_config("plnet", steps=3))
    assert "s0p0.L2.conv1" in ops and "s0p0.L2.conv2" not in ops
    assert "s0p1.L2.conv2" in ops and "s0p1.L2.conv3" not in ops
    assert "s0p2.L2.conv3" in ops
    stacked = ops_by_state(preset_config("plnet", steps=3, ipl="stacked"))
    assert "s0p0.L2.conv3" in stacked and not any(k.startswith("s0p1") for k in stacked)


def test_layers_are_shared_across_stages_and_passes():
    w = build_wiring(preset_config("plnet"))
    users = [op for op in w.ops if op.layer == "L1.conv1"]
    assert {(op.stage, op.pass_) for op in users} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert len({op.state for op in users}) == 4  # each application has its own BatchNorm
    stage2_only = {op.layer for op in w.ops if op.stage == 1} - {op.layer for op in w.ops if op.stage == 0}
    assert stage2_only == {"L4.conv1", "L4.conv2", "T3", "U4", "D3.conv1", "D3.conv2", "head1"}


def test_paper_network_has_79_norm_applications():
    assert sum(1 for op in build_wiring(preset_config("plnet")).ops if op.state) == 79


CASES = [
    ("plnet", {}),
    ("plnet", {"plan": "bionet", "fusion": "last"}),
    ("plnet", {"stages": 3, "depth": 4, "stage_step": 1, "block": "residual"}),
    ("plnet", {"ipl": "recurrent", "iterations": 3, "plan": "bionet", "integrate": True}),
    ("plnet", {"fsc": [False, True, True, True], "up": "convt2_half"}),
    ("plnet", {"spatial_dims": 3, "depth": 4}),
    ("bionet", {}),
    ("unet", {}),
] + [("plnet", {"block": b}) for b in sorted(BLOCKS)]


@pytest.mark.parametrize("name, overrides", CASES)
def test_estimate_equals_built_model_and_fvcore(name, overrides):
    cfg = preset_config(name, base_width=4, **overrides)
    size = 32 if cfg.spatial_dims == 2 else 16
    model = create_model(name, base_width=4, **overrides).eval()
    est = estimate(cfg, size)
    assert est.params == sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 3, *([size] * cfg.spatial_dims))
    macs, _ = count_macs(model, x)
    assert est.macs == macs


def test_estimate_is_cheap(monkeypatch):
    # cheap = analytic: no torch module is built (a search screens thousands of configs this way)
    def refuse(*args, **kwargs):
        raise AssertionError("estimate built a torch module")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)
    for steps in range(1, 5):
        for ocs in (0.5, 1.0, 1.5, 2.0):
            assert estimate(preset_config("plnet", steps=steps, ocs=ocs), 224).params > 0
