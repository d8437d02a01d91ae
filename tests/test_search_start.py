"""The main command's front: the trivial-predictor margin and the start configs (``plsearch.search.start``)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from plsearch.search import objective, parse_space, run_search
from plsearch.search.objective import learned
from plsearch.search.space import SearchSpaceError
from plsearch.search.study import open_study

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "search_spaces" / "tiny.yaml").read_text())
SMALL = {"model.steps": 1, "model.stages": 1, "model.ocs": 0.5}
LARGE = {"model.steps": 2, "model.stages": 2, "model.ocs": 1.0}
MIDDLE = {"model.steps": 1, "model.stages": 2, "model.ocs": 0.75}


def _space(**extra):
    return parse_space({**TINY, "start": [SMALL, LARGE, MIDDLE], **extra}, name="tiny")


def test_the_margin_rule_is_at_least_the_margin():
    assert learned(0.2506, 0.2006, 0.05)  # a gain of exactly the margin counts (0.04999... in binary)
    assert not learned(0.2505, 0.2006, 0.05)
    assert learned(0.2007, 0.2006, 0.0) and not learned(0.2006, 0.2006, 0.0)  # margin 0: better at all
    assert parse_space(TINY).trivial_margin == 0.05  # the default, as the issue asks


def test_start_configs_are_checked():
    for start, msg in (
        ([{**SMALL, "model.ocs": 0.6}], "model.ocs=0.6 is not in the axis"),  # off the 0.25 step
        ([{**SMALL, "model.stages": 3}], "not in the axis"),
        ([{"model.steps": 1}], "no value for model.stages, model.ocs"),
        ([{**SMALL, "model.depth": 4}], "model.depth not searched"),
        ([SMALL, dict(SMALL)], "repeats"),
        ({"model.steps": 1}, "must be a list"),
    ):
        with pytest.raises(SearchSpaceError, match=start and msg):
            parse_space({**TINY, "start": start})
    assert parse_space(TINY).start == ()


def test_start_configs_are_trials_0_to_k_whatever_finishes_first():
    """Two workers (their own samplers, different seeds) on one storage; the second trial finishes first."""
    space = _space()
    storage = optuna.storages.InMemoryStorage()
    a = open_study(space, storage, "tiny", seed=123, parallel=True)
    b = open_study(space, storage, "tiny", seed=98765, parallel=True)  # loads it: enqueues nothing more
    assert len(a.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 3
    t0, t1 = a.ask(), b.ask()
    p1 = space.sample(t1)
    b.tell(t1, [0.5, 1.0])  # the second one finishes first
    t2 = b.ask()
    p2, p0 = space.sample(t2), space.sample(t0)
    assert (t0.number, t1.number, t2.number) == (0, 1, 2)
    assert [p0, p1, p2] == [SMALL, LARGE, MIDDLE]
    t3 = a.ask()  # then the sampler's own draws
    assert space.sample(t3) not in (SMALL, LARGE, MIDDLE) or t3.number == 3


def _fake_train(gains):
    """Training replaced by a val Dice of the split's trivial predictors + ``gains[ocs]``, after 2 epochs."""

    def train(cfg, prof, metrics=(), on_epoch_end=None, **kwargs):
        from plsearch.search.datacache import load_data
        from plsearch.train.metrics import trivial_dice

        floor = trivial_dice(load_data(cfg.data, cfg.model.num_classes)["val"].masks)["best"]
        dice = floor + gains[cfg.model.ocs]
        for epoch in (1, 2):
            if on_epoch_end is not None:
                on_epoch_end(epoch, {"val_dice": dice, "val_iou": dice})
        return {"val_dice": dice, "val_iou": dice, "best_epoch": 2, "epochs_run": 2, "train_seconds": 0.0}

    return train


def test_a_trial_below_trivial_plus_margin_is_off_the_front_and_counted(tmp_path, monkeypatch):
    # the small net beats the trivial predictors by 0.04 (< 0.05): degenerate; the others by 0.3 and 0.06
    monkeypatch.setattr(objective, "train_and_score", _fake_train({0.5: 0.04, 1.0: 0.3, 0.75: 0.06}))
    out = tmp_path / "run"
    result = run_search(_space(), out_dir=out, n_trials=3, references=False)
    recs = {r["number"]: r for r in result.records}
    assert [recs[n]["params"] for n in (0, 1, 2)] == [SMALL, LARGE, MIDDLE]
    assert (
        recs[0]["feasible"] is False
        and "below all-" in recs[0]["fail_reason"]
        and "margin 0.05" in recs[0]["fail_reason"]
    )
    assert recs[1]["feasible"] and recs[2]["feasible"]
    assert sorted(r["trial"] for r in result.pareto) == [1, 2]  # 2 is smaller, 1 more accurate
    text = (out / "pareto.md").read_text()
    assert "beats it by at least 0.05; 1 degenerate trial(s) did not" in text


def test_start_trials_are_never_pruned_and_resume_where_they_stopped(tmp_path, monkeypatch):
    # asha's rung after epoch 1 keeps 1 of 3 and would stop the middle net (dominated by the small one)
    monkeypatch.setattr(objective, "train_and_score", _fake_train({0.5: 0.5, 1.0: 0.6, 0.75: 0.1}))
    space = _space(pruning={"name": "asha", "min_epochs": 1, "eta": 2})
    out = tmp_path / "run"
    first = run_search(space, out_dir=out, n_trials=1, references=False)  # "killed" after one trial
    assert [r["params"] for r in first.records] == [SMALL]
    again = run_search(space, out_dir=out, n_trials=3, references=False)
    recs = again.records
    assert [r["params"] for r in recs] == [SMALL, LARGE, MIDDLE]
    assert [r["state"] for r in recs] == ["COMPLETE"] * 3  # the middle one was not pruned
    study = again.study
    assert [t.user_attrs.get("start") for t in study.trials] == [0, 1, 2]
    rung = study.trials[2].user_attrs["asha_rungs"]["1"]
    assert rung["rank"] == 2 and rung["keep"] == 1 and rung["promoted"] and rung["start"]  # ranked last, went on
