"""The conformance kit (plsearch.testing) over every registered block, up unit, preset, metric, pruner and
sampler and every shipped space: a new entry needs no new test code, and a user runs the same checks on a plug-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from plsearch.config.presets import list_presets
from plsearch.config.registry import list_blocks, list_ups
from plsearch.search.registries import list_metrics, list_pruners, list_samplers
from plsearch.testing import (
    ContractError,
    check_block,
    check_metric,
    check_preset,
    check_pruner,
    check_sampler,
    check_space,
    check_up,
)

REPO = Path(__file__).resolve().parents[1]
SPACES = sorted((REPO / "search_spaces").glob("*.yaml")) + [REPO / "examples" / "custom_space.yaml"]


@pytest.mark.parametrize("name", list_blocks())
def test_block_contract(name):
    check_block(name)


@pytest.mark.parametrize("name", list_ups())
def test_up_unit_contract(name):
    check_up(name)


@pytest.mark.parametrize("name", list_presets())
def test_preset_contract(name):
    check_preset(name)


@pytest.mark.parametrize("name", list_metrics())
def test_builtin_metric_contract(name):
    check_metric(name)


@pytest.mark.parametrize("name", list_pruners())
def test_pruner_contract(name):
    check_pruner(name)


@pytest.mark.parametrize("name", list_samplers())
def test_sampler_contract(name):
    check_sampler(name)


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


def test_the_kit_catches_a_broken_pruner():
    from dataclasses import dataclass

    from plsearch.search.registries import PRUNERS, register_pruner

    @register_pruner("h_broken_eager")
    class Eager:  # stops every trial after its first epoch, the study's first one included
        def __init__(self, space) -> None:
            pass

        def check(self, state) -> str | None:
            return "stop"

    @dataclass  # not frozen, and a field without a default
    class Loose:
        rate: float

    @register_pruner("h_broken_options")
    class Unparsable:
        Options = Loose

        def __init__(self, space) -> None:
            pass

        def check(self, state) -> str | None:
            return None

    try:
        with pytest.raises(ContractError, match="first trial"):
            check_pruner("h_broken_eager")
        with pytest.raises(ContractError, match="frozen"):
            check_pruner("h_broken_options")
    finally:
        PRUNERS.unregister("h_broken_eager")
        PRUNERS.unregister("h_broken_options")


def test_the_kit_catches_a_broken_sampler():
    import random

    from optuna.samplers import RandomSampler

    from plsearch.search.registries import SAMPLERS, register_sampler

    class Seedless(RandomSampler):  # takes seed= and drops it: a resumed search cannot be reproduced
        def __init__(self, seed: int | None = None) -> None:
            super().__init__(seed=random.randrange(2**31))

    class NoSeed(RandomSampler):
        def __init__(self) -> None:
            super().__init__()

    register_sampler("h_broken_seedless", Seedless)
    register_sampler("h_broken_noseed", NoSeed)
    try:
        with pytest.raises(ContractError, match="same seed"):
            check_sampler("h_broken_seedless")
        with pytest.raises(ContractError, match="seed="):
            check_sampler("h_broken_noseed")
    finally:
        SAMPLERS.unregister("h_broken_seedless")
        SAMPLERS.unregister("h_broken_noseed")
