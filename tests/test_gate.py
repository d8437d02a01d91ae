"""The one gate: --set dialect, overrides validated once, cross-section and environment checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plsearch.config.gate import DeviceError, StrideError, check_device, check_value, parse_sets, resolve
from plsearch.config.schema import ConfigError, RunConfig


def test_parse_sets_dialect():
    got = parse_sets(
        ["model.ocs=0.5", "epochs=5", "train.lr=1e-3", "model.bsc=[false, true, true, true]", "data.root=/tmp/x"]
    )
    assert got == {
        "model.ocs": 0.5,
        "train.epochs": 5,
        "train.lr": 0.001,
        "model.bsc": [False, True, True, True],
        "data.root": "/tmp/x",
    }
    assert isinstance(got["train.lr"], float)


@pytest.mark.parametrize(
    "item, match",
    [
        ("model.ocs", "KEY=VALUE"),
        ("=3", "KEY=VALUE"),
        ("seed=1", "data.seed or"),
        ("model.nope=1", "valid model. keys"),
        ("nope=1", "unknown key"),
    ],
)
def test_parse_sets_refuses(item, match):
    with pytest.raises(ConfigError, match=match):
        parse_sets([item])


def test_resolve_reads_every_override_form():
    strings = resolve(RunConfig(), ["model.ocs=0.5", "train.epochs=3", "data.image_size=64", "model.bsc=false"])
    assert (strings.model.ocs, strings.train.epochs, strings.data.image_size, strings.model.bsc) == (0.5, 3, 64, False)
    mapping = {"model.ocs": 0.5, "train.epochs": 3, "data.image_size": 64, "model.bsc": False}
    assert resolve(RunConfig(), mapping) == resolve(RunConfig(), list(mapping.items())) == strings
    run = resolve(RunConfig(), ["train.lr=1e-3", "model.block=residual"])  # an exponent without a dot is a number
    assert run.train.lr == 1e-3 and isinstance(run.train.lr, float) and run.model.block == "residual"
    assert resolve(RunConfig(), {"epochs": 5}).train.epochs == 5  # bare names qualified, as --set's
    base = RunConfig()
    assert resolve(base, {"model.ocs": 0.5}).model.ocs == 0.5 and base.model.ocs != 0.5  # a new config


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["model.nope=1"], "valid model. keys"),
        ({"model.nope": 1}, "valid model. keys"),
        ({"nope": 1}, "unknown key"),
        (["model.ocs"], "key=value"),
        ({"seed": 1}, "data.seed or"),
        ({"model.ocs.x": 1}, "no sub-keys"),
    ],
)
def test_resolve_refuses_unknown_keys_and_bare_items(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve(RunConfig(), overrides)


def test_resolve_validates_once_at_the_end():
    # recurrent needs iterations >= 1 and iterations needs recurrent: only valid together
    cfg = resolve(None, ["model.ipl=recurrent", "model.iterations=3", "image_size=64"])
    assert (cfg.model.ipl, cfg.model.iterations, cfg.data.image_size) == ("recurrent", 3, 64)
    assert resolve(cfg.to_dict(), {}) == cfg


def test_resolve_image_size_against_stride():
    with pytest.raises(StrideError, match="total stride 16") as info:
        resolve(RunConfig(), {"data.image_size": 8})
    assert info.value.need == 16


def test_resolve_channels_follow_the_data():
    class Data:
        channels = 1

    assert resolve(None, {}, data=Data()).model.in_channels == 1
    assert resolve(None, {}, data={"train": Data()}).model.in_channels == 1
    assert resolve(None, {"model.in_channels": 1}, data=1).model.in_channels == 1
    with pytest.raises(ConfigError, match="images have 1 channels"):
        resolve(None, {"model.in_channels": 3}, data=1)


def test_resolve_device():
    assert resolve(None, {}, device="cpu").train.device == "cpu"
    with pytest.raises(DeviceError):
        resolve(None, {}, device="gpu")
    with pytest.raises(DeviceError):
        check_device("tpu:0")
    if not check_device("auto").type == "cuda":
        with pytest.raises(DeviceError, match="not available"):
            check_device("cuda")


def test_block_name_checked_without_torch_and_unknown_listed():
    with pytest.raises(ConfigError, match="plconv"):
        resolve(None, {"model.block": "nope"})


def test_check_value_field_rules_only():
    assert check_value("train.lr", "1e-3") == 0.001
    assert check_value("model.bsc", [False, True]) == [False, True]  # length is a combination: resolve's job
    with pytest.raises(ConfigError, match=r"^model.ocs"):
        check_value("model.ocs", 100.0)
    with pytest.raises(ConfigError, match="model.ipl"):
        check_value("model.ipl", "sideways")
    with pytest.raises(ConfigError, match="valid model. keys"):
        check_value("model.nope", 1)


TORCH_FREE = [
    "plsearch",
    "plsearch.config.schema",
    "plsearch.config.registry",
    "plsearch.config.presets",
    "plsearch.config.gate",
    "plsearch.config.naming",
    "plsearch.graph.wiring",
    "plsearch.graph.costs",
    "plsearch.search.space",
]


def test_config_wiring_and_space_parser_import_no_torch():
    code = (
        "import sys\n"
        f"for m in {TORCH_FREE!r}: __import__(m)\n"
        "from plsearch.config.gate import resolve\n"
        "from plsearch.graph.wiring import build_wiring, estimate\n"
        "cfg = resolve(None, ['model.block=residual', 'data.image_size=64'])\n"
        "build_wiring(cfg.model)\n"
        "estimate(cfg.model, 64)\n"
        "from plsearch.search.space import load_space\n"
        "space = load_space('search_spaces/tiny.yaml')\n"
        "cfgs = [space.build(p) for p in space.corner_params()]\n"
        "[estimate(c.model, c.data.image_size) for c in cfgs]\n"
        "heavy = sorted(m for m in ('torch', 'matplotlib', 'fvcore') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"
