"""The block registry: names, duplicates, errors that list the choices."""

from __future__ import annotations

import pytest

from plsearch.config.registry import get_block, list_blocks, register_block

# The block contract over every registered block is plsearch.testing.check_block (tests/test_conformance.py).


def test_builtin_costs_are_the_blocks_own():
    from plsearch.graph.costs import BLOCK_COSTS

    for name, cost in BLOCK_COSTS.items():  # plsearch.graph.costs answers estimate without torch; the classes agree
        cls = get_block(name)
        assert cls.params(6, 3, 2) == cost.params(6, 3, 2) and cls.macs(6, 3, 3, 343) == cost.macs(6, 3, 3, 343)


def test_register_rejects_duplicate_names():
    with pytest.raises(ValueError, match="already registered"):
        register_block("plconv")(type("Other", (), {}))


def test_unknown_block_lists_choices():
    with pytest.raises(ValueError, match="plconv"):
        get_block("nope")


def test_block_names_known_without_importing_them():
    assert {"plconv", "convbnrelu", "residual"} <= set(list_blocks())


# ----------------------------------------------------------------------------- up units


def test_up_units_are_a_registry_named_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; from plsearch.config.registry import list_ups; from plsearch.config.schema import ModelConfig; "
        "from plsearch.graph.wiring import build_wiring, estimate; "
        "cfg = ModelConfig(up='convt2_half'); estimate(cfg, 64); print(sorted(list_ups())); "
        "assert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['convt2_half', 'convt3']"


def test_builtin_up_costs_and_widths_are_the_units_own():
    from plsearch.config.registry import get_up, list_ups
    from plsearch.graph.costs import UP_COSTS

    assert set(UP_COSTS) == set(list_ups())
    for name, cost in UP_COSTS.items():
        cls = get_up(name)
        assert cls.up_name == name
        assert cls.params(6, 3, 2) == cost.params(6, 3, 2) and cls.macs(6, 3, 3, 512) == cost.macs(6, 3, 3, 512)
        assert cls.out_width(8, 4) == cost.out_width(8, 4)
    assert (UP_COSTS["convt3"].out_width(8, 4), UP_COSTS["convt2_half"].out_width(8, 4)) == (8, 4)


def test_unknown_up_unit_lists_choices():
    from plsearch.config.schema import ConfigError, ModelConfig

    with pytest.raises(ConfigError, match=r"up='bilinear' is not a registered up unit; choose one of .*convt3"):
        ModelConfig(up="bilinear")


def test_a_new_up_unit_is_one_registered_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from plsearch.config.registry import UP_REGISTRY, register_up
    from plsearch.config.schema import ModelConfig
    from plsearch.graph.wiring import build_wiring, estimate
    from plsearch.nn.blocks import UpUnit, conv_nd
    from plsearch.nn.model import PLNet
    from plsearch.testing import ContractError, check_up

    @register_up("h_nearest")
    class NearestUp(UpUnit):
        """Nearest-neighbour upsampling, then a 1x1 conv to the width of the level it lands on."""

        def __init__(self, cin: int, cout: int, dims: int) -> None:
            super().__init__(cin, cout, dims)
            self.conv = conv_nd(dims)(cin, cout, 1)

        def make_state(self) -> nn.Module:
            return nn.Identity()

        def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
            return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))

        params = staticmethod(lambda cin, cout, dims: (cin * cout + cout, 0))
        # fvcore counts one MAC per value of a 2D nearest upsampling, none in 3D
        macs = staticmethod(lambda cin, cout, dims, voxels: voxels * cin * (cout + (dims == 2)))
        out_width = staticmethod(lambda below, here: here)

    class WrongWidth(NearestUp):  # says it lands on the level's width, builds twice that
        out_width = staticmethod(lambda below, here: 2 * here)

        def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
            return super().forward(x, state)[:, : self.cout // 2]

    try:
        with pytest.raises(ContractError, match="output"):
            check_up(WrongWidth, dims=(2,), macs=False)
        check_up("h_nearest")
        cfg = ModelConfig(base_width=4, depth=3, stages=1, up="h_nearest")
        ups = [lay for lay in build_wiring(cfg).layers if lay.kind == "up"]
        assert [(lay.cin, lay.cout) for lay in ups] == [(16, 8), (8, 4)]  # out_width: the landing level's width
        model = PLNet.from_config(cfg)
        assert estimate(cfg, 32).params == sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    finally:
        UP_REGISTRY.unregister("h_nearest")
