"""Numbers that are not numbers: NaN and infinities are refused by every numeric config field and CLI flag,
with the field's name and what is allowed (NaN passes every comparison, so a range check alone lets it in)."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from plsearch.config.gate import resolve
from plsearch.config.schema import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")


def _numeric_fields() -> list[tuple[str, str, type]]:
    out = []
    for section, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if tp in (int, float):
                out.append((section, f.name, tp))
    return out


FIELDS = _numeric_fields()
BAD = [("nan", math.nan), (".inf", math.inf), ("-.inf", -math.inf), ("1e400", math.inf)]


def test_every_numeric_field_is_covered():
    names = {f"{s}.{n}" for s, n, _ in FIELDS}
    assert {
        "model.ocs",
        "model.norm_momentum",
        "data.val_fraction",
        "train.lr",
        "train.rotation_deg",
        "train.seed",
        "data.image_size",
    } <= names


@pytest.mark.parametrize("section, name, tp", FIELDS, ids=[f"{s}.{n}" for s, n, _ in FIELDS])
def test_nan_and_infinities_are_refused_naming_the_field(section, name, tp):
    for text, value in BAD:
        with pytest.raises(ConfigError) as e:  # through --set / a config file
            resolve(RunConfig(), [f"{section}.{name}={text}"])
        assert name in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(ConfigError) as e:  # as a number, through a dict
            resolve(RunConfig(), {f"{section}.{name}": value})
        assert name in str(e.value)
        assert "finite" in str(e.value) or "integer" in str(e.value)


@pytest.mark.parametrize(
    "cls, name",
    [
        (ModelConfig, "norm_momentum"),
        (ModelConfig, "ocs"),
        (DataConfig, "val_fraction"),
        (TrainConfig, "lr"),
        (TrainConfig, "rotation_deg"),
        (TrainConfig, "shift"),
        (TrainConfig, "weight_decay"),
    ],
)
def test_direct_construction_refuses_nan_with_what_is_allowed(cls, name):
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ConfigError, match=rf"{name}=.*(finite|allowed)") as e:
            cls(**{name: value})
        assert "<=" in str(e.value) or "finite" in str(e.value)


@pytest.mark.parametrize("seed", [-1, 2**32, -(2**40)])
def test_seeds_outside_numpys_range_are_refused(seed):
    for key in ("train.seed", "data.seed"):
        with pytest.raises(ConfigError, match="seed"):
            resolve(RunConfig(), {key: seed})


def test_space_files_refuse_nan_ranges_and_budgets(tmp_path):
    from plsearch.search.space import SearchSpaceError, load_space

    base = open(TINY).read()
    for extra, key in (
        ("train.weight_decay: {low: .nan, high: 0.1}\n", "weight_decay"),
        ("train.lr: {low: 1.0e-4, high: .inf, log: true}\n", "lr"),
        ("constraints: {params: .nan}\n", "params"),
        ("train.rotation_deg: .nan\n", "rotation_deg"),
        ("timeout: .nan\n", "timeout"),
    ):
        p = tmp_path / "s.yaml"
        p.write_text(base.replace("train.lr: 0.003", "") + extra)
        with pytest.raises((SearchSpaceError, ConfigError)) as e:
            load_space(p)
        assert key in str(e.value), str(e.value)
