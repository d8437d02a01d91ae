"""profile(): params, fvcore MACs with unsupported ops listed, latency, memory; and its CLI."""

from __future__ import annotations

import json

import pytest
from torch import nn

import plsearch
from plsearch import create_model, estimate
from plsearch.cli.profile import main


def test_profile_any_module():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    prof = plsearch.profile(net, 10, repeats=2, warmup=1)
    assert prof.params == 1 * 4 * 9 + 4
    assert prof.macs == 10 * 10 * 4 * 9  # conv MACs on the output grid, bias free
    assert "aten::max_pool2d" in prof.unsupported_ops  # listed, not silently zero
    assert prof.latency_ms is not None and prof.latency_ms > 0
    # The conv output (4x10x10 floats) must be alive at some point.
    assert prof.peak_memory_mb is not None and prof.peak_memory_mb * 2**20 >= 4 * 10 * 10 * 4


def test_profile_matches_estimate_and_restores_mode():
    model = create_model("plnet-small", base_width=8).train()
    prof = plsearch.profile(model, 48, latency=False, memory=False)
    est = estimate(model.config, 48)
    assert (prof.params, prof.macs) == (est.params, est.macs)
    assert model.training


def test_profile_cli_json_reports_paper_parameters(capsys):
    assert main(["--model", "plnet", "--json", "--no-latency"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["params"] - 15.03e6) / 15.03e6 < 0.01
    assert out["macs"] == 63_110_369_280
    assert out["model_config"]["steps"] == 2


def test_profile_cli_table_with_overrides(capsys):
    assert (
        main(["--model", "plnet", "--set", "ocs=0.5", "--set", "base_width=8", "--input-size", "32", "--repeats", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "params" in out and "MACs" in out and "latency" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--model", "nope"], "not a preset"),
        (["--set", "foo=1"], "unknown key 'foo'"),
        (["--set", "ocs"], "KEY=VALUE"),
        (["--input-size", "8"], "total stride"),
        (["--device", "cuda:7"], "not available"),
        (["--config", "/nonexistent.yaml"], "nonexistent"),
    ],
)
def test_profile_cli_errors_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err and err.count("\n") == 1
