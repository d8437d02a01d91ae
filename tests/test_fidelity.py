"""Fidelity-check statistics against scipy, and the fidelity CLI end to end (slow)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from plsearch.studies.fidelity import analyse, cheaper_lows, truncate_low
from plsearch.studies.rankstats import (
    bootstrap_ci,
    kendall,
    ranks,
    regret,
    spearman,
    top_k_overlap,
)

LOW = [0.20, 0.45, 0.45, 0.10, 0.80, 0.33, 0.61, 0.61, 0.05, 0.72]
HIGH = [0.52, 0.60, 0.41, 0.30, 0.88, 0.58, 0.66, 0.70, 0.31, 0.69]


def test_rank_statistics_equal_scipys_with_ties():
    assert ranks(LOW) == pytest.approx(sps.rankdata(LOW))
    assert spearman(LOW, HIGH) == pytest.approx(sps.spearmanr(LOW, HIGH).statistic, abs=1e-12)
    assert kendall(LOW, HIGH) == pytest.approx(sps.kendalltau(LOW, HIGH).statistic, abs=1e-12)  # tau-b
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 5, 12), rng.normal(size=12)
        assert kendall(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)
        assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert math.isnan(kendall([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_bootstrap_interval_matches_scipy_percentile_bootstrap_and_covers_the_estimate():
    lo, hi = bootstrap_ci(LOW, HIGH, kendall, n_boot=1500, seed=1)
    ref = sps.bootstrap(
        (np.array(LOW), np.array(HIGH)),
        lambda a, b: sps.kendalltau(a, b).statistic,
        paired=True,
        vectorized=False,
        n_resamples=1500,
        method="percentile",
        random_state=1,
    ).confidence_interval
    assert lo <= kendall(LOW, HIGH) <= hi
    assert lo == pytest.approx(ref.low, abs=0.1) and hi == pytest.approx(ref.high, abs=0.1)
    assert bootstrap_ci(LOW, HIGH, kendall, seed=5) == bootstrap_ci(LOW, HIGH, kendall, seed=5)


def test_top_k_overlap_and_regret_by_hand():
    low, high = [0.9, 0.8, 0.1, 0.5], [0.3, 0.9, 0.8, 0.2]
    assert top_k_overlap(low, high, 1) == 0.0  # low's best (0) is not high's best (1)
    assert top_k_overlap(low, high, 2) == 0.5  # {0, 1} vs {1, 2}
    assert regret(low, high) == pytest.approx(0.9 - 0.3)
    assert regret(low, high, k=2) == pytest.approx(0.0)


def test_analyse_pairs_low_and_high_and_leaves_failed_configs_out():
    rows = []
    for i, (lo, hi) in enumerate(zip(LOW, HIGH)):
        rows.append({"group": f"c{i}", "side": "low", "val_dice": lo, "test_dice": 0.0, "params_count": 1, "macs": 1})
        rows.append({"group": f"c{i}", "side": "high", "val_dice": 0.0, "test_dice": hi})
    rows.append({"group": "bad", "side": "low", "val_dice": 0.5})
    rows.append({"group": "bad", "side": "high", "fail_reason": "non-finite loss"})
    s = analyse(rows, n_boot=200)
    assert s["n"] == len(LOW) and s["missing"] == ["bad"]
    assert s["kendall"]["value"] == pytest.approx(sps.kendalltau(LOW, HIGH).statistic)
    json.dumps(s)


@pytest.mark.slow
def test_fidelity_cli_end_to_end_and_resume(tmp_path, capsys):
    from plsearch.cli.fidelity import main

    args = [
        "--space",
        "search_spaces/tiny.yaml",
        "--configs",
        "3",
        "--low",
        "train.epochs=1",
        "--high",
        "train.epochs=2",
        "--no-references",
        "--out",
        str(tmp_path / "f"),
    ]
    assert main(args) == 0
    doc = json.loads((tmp_path / "f" / "fidelity.json").read_text())
    assert doc["n"] == 3 and (tmp_path / "f" / "fidelity.png").is_file()
    assert doc["reading"] == "independent seeds (low seed 0, high seed 1)" and not doc["same_seed"]
    capsys.readouterr()
    assert main(args) == 0
    assert "run c0" not in capsys.readouterr().out  # resumed: nothing retrained


def test_fidelity_cli_bad_input_is_one_line(tmp_path, capsys):
    from plsearch.cli.fidelity import main

    assert (
        main(
            [
                "--space",
                "search_spaces/tiny.yaml",
                "--low",
                "train.epochs=1",
                "--high",
                "train.epochs=1",
                "--out",
                str(tmp_path / "f"),
            ]
        )
        == 2
    )
    assert main(["--space", "search_spaces/tiny.yaml", "--high", "model.steps=2", "--out", str(tmp_path)]) == 2
    assert main(["--space", "search_spaces/tiny.yaml", "--configs", "0", "--high", "train.epochs=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def _curve_rows() -> list[dict]:
    """Six configs: epochs 1-2 rank them backwards, from epoch 3 on the low curve ranks them like the high runs."""
    rows = []
    for i in range(6):
        high = 0.5 + 0.05 * i
        curve = [0.1 - 0.01 * i, 0.05, 0.2 + 0.05 * i, 0.25 + 0.05 * i]
        rows.append(
            {"group": f"c{i}", "side": "low", "val_dice": max(curve), "val_curve": curve, "train_seconds": 40.0}
        )
        rows.append({"group": f"c{i}", "side": "high", "val_dice": high, "test_dice": high, "train_seconds": 100.0})
    return rows


def test_truncated_low_is_the_best_val_dice_of_the_first_epochs():
    rows = truncate_low(_curve_rows(), 2)
    lows = [r for r in rows if r["side"] == "low"]
    assert [r["val_dice"] for r in lows] == pytest.approx([0.1 - 0.01 * i for i in range(6)])
    assert all(r["train_seconds"] == pytest.approx(20.0) and r["epochs_run"] == 2 for r in lows)
    assert [r["test_dice"] for r in rows if r["side"] == "high"] == pytest.approx([0.5 + 0.05 * i for i in range(6)])


def test_cheaper_lows_find_where_the_ranking_starts_to_hold():
    table = {r["epochs"]: r for r in cheaper_lows(_curve_rows())}
    assert sorted(table) == [1, 2, 3, 4]
    assert table[1]["kendall"] == pytest.approx(-1.0) and table[2]["kendall"] == pytest.approx(-1.0)
    assert table[3]["kendall"] == pytest.approx(1.0) and table[4]["kendall"] == pytest.approx(1.0)
    assert table[1]["regret_top1"] == pytest.approx(0.25) and table[3]["regret_top1"] == pytest.approx(0.0)
    assert table[3]["low_seconds"] == pytest.approx(6 * 30.0)


def test_presets_get_their_rate_by_the_search_rule():
    """Each preset runs at the space's candidate rates; per side the best on validation counts (ties: lower rate)."""
    from plsearch.search.space import load_space
    from plsearch.studies.fidelity import FidelityConfig, fidelity_jobs
    from plsearch.train.lr import lr_candidates

    space = load_space("search_spaces/ipl_epl.yaml")
    rates = lr_candidates(space)
    jobs = [
        j
        for j in fidelity_jobs(space, FidelityConfig(low={}, high={"train.epochs": 2}, configs=1))
        if j.info.get("preset")
    ]
    assert len(jobs) == 2 * len(rates) * len(space.references) and len(rates) == 3
    assert {j.config.train.lr for j in jobs} == set(rates)
    rows = []
    for side, dices in (("low", (0.3, 0.5, 0.5)), ("high", (0.7, 0.6, 0.2))):
        for lr, d in zip(rates, dices):
            rows.append(
                {
                    "group": f"unet_lr{lr:.3g}",
                    "side": side,
                    "preset": True,
                    "preset_of": "unet",
                    "lr": lr,
                    "val_dice": d,
                    "test_dice": d + 0.01,
                }
            )
    rows.append(
        {"group": "unet_lrx", "side": "low", "preset_of": "unet", "lr": 9.0, "val_dice": 0.9, "fail_reason": "x"}
    )
    pairs = analyse(rows)["pairs"]
    assert [(p["label"], p["low"], p["high"]) for p in pairs] == [("unet", 0.5, pytest.approx(0.71))]


def test_the_high_run_trains_with_another_seed_unless_same_seed():
    """Independent seeds by default (high = low + 1, its own job key); ``same_seed`` keeps the old continued run."""
    from plsearch.search.space import load_space
    from plsearch.studies.fidelity import FidelityConfig, fidelity_jobs, high_seed

    space = load_space("search_spaces/tiny.yaml")
    fc = FidelityConfig(low={}, high={"train.epochs": 3}, configs=2, references=False)
    for same, jobs in ((False, fidelity_jobs(space, fc)), (True, fidelity_jobs(space, replace(fc, same_seed=True)))):
        by = {(j.group, j.info["side"]): j for j in jobs}
        assert len(by) == len(jobs) == 4
        for label in ("c00", "c01"):
            low, high = by[label, "low"], by[label, "high"]
            assert low.config.train.seed == space.seed and low.key == f"{label}/low"
            assert high.config.train.epochs == 3 and low.config.train.epochs != 3
            if same:
                assert high.config.train.seed == low.config.train.seed and high.key == f"{label}/high"
                assert replace(high.config, train=low.config.train) == low.config  # differs only in train.epochs
            else:
                assert high.config.train.seed == high_seed(low.config.train.seed) != low.config.train.seed
                assert high.key == f"{label}/high-s{high.config.train.seed}"  # not the old same-seed key
    # a seed the high overrides choose themselves is kept
    jobs = fidelity_jobs(space, replace(fc, high={"train.epochs": 3, "train.seed": 7}, configs=1))
    assert [(j.key, j.config.train.seed) for j in jobs] == [("c00/low", space.seed), ("c00/high-s7", 7)]


def test_the_report_says_which_reading_it_is(tmp_path):
    from plsearch.studies.fidelity import FidelityConfig, write_outputs

    rows = [
        {**r, "config": {"train": {"seed": 0 if r["side"] == "low" else 1}}, "params_count": 1, "macs": 1}
        for r in _curve_rows()
    ]
    fc = FidelityConfig(low={"train.epochs": 4}, high={"train.epochs": 8})
    for same, expect in (
        (False, "independent seeds (low seed 0, high seed 1)"),
        (True, "same run continued (same-run upper bound)"),
    ):
        out = tmp_path / str(same)
        write_outputs(rows, out, replace(fc, same_seed=same))
        assert f"reading: {expect}" in (out / "fidelity.md").read_text()
        doc = json.loads((out / "fidelity.json").read_text())
        assert doc["reading"] == expect and doc["same_seed"] is same
