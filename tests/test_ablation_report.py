"""The ablation benchmark's reading of its runs: equal compute, a run cut at E epochs, rank agreement."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("ablation", Path(__file__).parents[1] / "benchmarks" / "ablation.py")
assert SPEC and SPEC.loader
ablation = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ablation)


def row(group: str, variant: str, macs: float, val: list[float], test: list[float], seed: int = 0) -> dict:
    return {
        "key": f"{group}/seed_{seed}",
        "group": group,
        "variant": variant,
        "stages": 1,
        "seed": seed,
        "macs": macs,
        "params": 1000,
        "batch_size": 2,
        "steps": [10] * len(val),
        "val_curve": val,
        "test_curve": test,
        "val_dice": max(val),
        "test_dice": test[max(range(len(val)), key=val.__getitem__)],
    }


def test_at_epochs_takes_the_best_validation_epoch_within_the_cut():
    r = row("n1_s1", "n1", 1e6, [0.2, 0.6, 0.5, 0.9], [0.3, 0.7, 0.8, 0.95])
    assert ablation.at_epochs(r, 2) == 0.7  # epoch 2 has the best val among the first two
    assert ablation.at_epochs(r, 3) == 0.7  # epoch 3's test is higher, but its val is not
    assert ablation.at_epochs(r, 4) == 0.95


def test_at_budget_counts_training_flops():
    r = row("n1_s1", "n1", 1e6, [0.2, 0.6, 0.9], [0.3, 0.7, 0.95])
    per_epoch = 10 * 2 * 6.0 * 1e6
    assert ablation.at_budget(r, per_epoch * 2) == 0.7
    assert ablation.at_budget(r, per_epoch * 0.5) is None  # not even one epoch fits


def test_summary_reads_half_the_epochs_and_the_ranking_agreement():
    rows = []
    # a fast learner that others overtake: the ranking at half the epochs is reversed at the end
    for seed, d in enumerate((0.0, 0.02)):
        rows.append(row("n1_s1", "n1", 1e6, [0.7, 0.8, 0.81, 0.82], [0.7 + d, 0.8 + d, 0.8, 0.81 + d], seed))
        rows.append(row("n2_ipl_s1", "n2_ipl", 2e6, [0.4, 0.6, 0.8, 0.9], [0.4, 0.6 + d, 0.85, 0.9 + d], seed))
        rows.append(row("n3_ipl_s1", "n3_ipl", 3e6, [0.2, 0.3, 0.85, 0.95], [0.2, 0.3 + d, 0.9, 0.93 + d], seed))
    s = ablation.summarize(rows)
    assert s["half_epochs"] == 2
    by = {t["config"]: t for t in s["rows"]}
    assert by["n1_s1"]["half"][0] == pytest.approx(0.81)
    assert by["n3_ipl_s1"]["test_dice"] == pytest.approx(0.94)
    a = s["half_agreement"]
    assert a["tau"] == pytest.approx(-1.0) and not a["same_best"]
    # equal compute: the cheapest config's whole run is the larger budget; the 3x-MACs config fits a third of it
    assert math.isclose(s["budgets_pflop"][1], 4 * 10 * 2 * 6.0 * 1e6 / 1e15)
    md = ablation.markdown(s, {"train.epochs": 4}, "toy")
    assert "test Dice at 2 epochs" in md and "Kendall tau -1.00" in md and "not the same" in md
