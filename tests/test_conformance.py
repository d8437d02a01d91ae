"""The conformance kit (plsearch.testing) over every registered block, preset and metric and every
shipped space: a new entry needs no new test code, and a user runs the same checks on a plug-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from plsearch.config.presets import list_presets
from plsearch.config.registry import list_blocks
from plsearch.search.registries import list_metrics
from plsearch.testing import ContractError, check_block, check_metric, check_preset, check_space

REPO = Path(__file__).resolve().parents[1]
SPACES = sorted((REPO / "search_spaces").glob("*.yaml")) + [REPO / "examples" / "custom_space.yaml"]


@pytest.mark.parametrize("name", list_blocks())
def test_block_contract(name):
    check_block(name)


@pytest.mark.parametrize("name", list_presets())
def test_preset_contract(name):
    check_preset(name)


@pytest.mark.parametrize("name", list_metrics())
def test_builtin_metric_contract(name):
    check_metric(name)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_shipped_space_runs_a_forward_at_its_corners(path):
    assert check_space(path)


def test_the_kit_catches_a_broken_block():
    import torch
    from torch import nn

    from plsearch.nn.blocks import Block

    class WrongParams(Block):  # says it has no weights; it has a conv
        def __init__(self, cin: int, cout: int, dims: int) -> None:
            super().__init__(cin, cout, dims)
            self.conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(cin, cout, 3, padding=1)

        def make_state(self) -> nn.Module:
            return nn.Identity()

        def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
            return state(self.conv(x))

        @staticmethod
        def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
            return 0, 0

        @staticmethod
        def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
            return 0

    with pytest.raises(ContractError, match="shared"):
        check_block(WrongParams, dims=(2,), macs=False)


def test_the_kit_catches_a_broken_metric():
    from plsearch.search.registries import METRICS, register_metric

    @register_metric("h1_broken_nan", "maximize")
    def broken(ctx) -> float:
        return float("nan")

    try:
        with pytest.raises(ContractError, match="finite"):
            check_metric("h1_broken_nan")
    finally:
        METRICS.unregister("h1_broken_nan")


def test_the_kit_catches_a_space_without_a_valid_corner():
    from plsearch.search.space import parse_space

    space = parse_space(
        {
            "model.transition": ["none"],
            "model.bsc": {"value": True},
            "model.steps": {"low": 1, "high": 2},
            "references": False,
        }
    )
    with pytest.raises(ContractError, match="no corner"):
        check_space(space, forward=False)
