"""The learning-rate rule: a grid over the space's train.lr axis, best on validation, used by the references."""

from __future__ import annotations

import pytest

from plsearch.config.schema import RunConfig
from plsearch.search.space import parse_space
from plsearch.train.lr import choose_lr, lr_candidates, lr_grid


def test_grid_is_log_spaced_inside_the_range():
    assert lr_grid(1e-3, 1e-2, 3) == (1.47e-3, 3.16e-3, 6.81e-3)
    assert lr_grid(1e-4, 1e-2, 1) == (1e-3,)
    with pytest.raises(ValueError):
        lr_grid(1e-2, 1e-3)


def test_candidates_follow_the_space_axis():
    axis = parse_space({"model.steps": {"low": 1, "high": 2}, "train.lr": {"low": 1e-3, "high": 1e-2, "log": True}})
    assert lr_candidates(axis) == lr_grid(1e-3, 1e-2)
    fixed = parse_space({"model.steps": {"low": 1, "high": 2}, "fidelity": {"train.lr": 0.005}})
    assert lr_candidates(fixed) == ()


def test_choose_keeps_the_best_rate_on_validation_and_survives_a_failing_one():
    seen = []

    def train(cfg):
        seen.append(cfg.train.lr)
        if cfg.train.lr > 5e-3:
            raise RuntimeError("non-finite loss")
        return {"val_dice": {1e-3: 0.5, 3e-3: 0.7}.get(cfg.train.lr, 0.1)}

    choice = choose_lr(RunConfig(), (1e-3, 3e-3, 1e-2), train)
    assert (choice.lr, choice.val_dice) == (3e-3, 0.7) and choice.tried == {1e-3: 0.5, 3e-3: 0.7, 1e-2: None}
    assert seen == [1e-3, 3e-3, 1e-2]
    assert choose_lr(RunConfig(), (), train).lr == RunConfig().train.lr  # no candidates: its own rate
    with pytest.raises(RuntimeError):
        choose_lr(RunConfig(), (1e-2, 2e-2), train)


def test_references_train_each_preset_at_the_axis_rates_and_keep_the_best(tmp_path, monkeypatch):
    from plsearch.search import references
    from plsearch.search.space import load_space

    space = load_space(references.Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml")
    raw = dict(space.raw)
    raw["fidelity"] = {k: v for k, v in raw["fidelity"].items() if k != "train.lr"}
    space = parse_space({**raw, "train.lr": {"low": 1e-3, "high": 1e-2, "log": True}}, name="tiny")
    calls = []

    def fake_train(cfg, prof, metrics=(), on_epoch_end=None, **kwargs):
        calls.append(cfg.train.lr)
        return {"val_dice": 1.0 - abs(cfg.train.lr - 3.16e-3)}

    monkeypatch.setattr("plsearch.search.objective.train_and_score", fake_train)
    recs = references.train_references(space, tmp_path)
    assert calls == list(lr_grid(1e-3, 1e-2))  # one preset (unet) x 3 rates
    assert recs["unet"]["lr"] == 3.16e-3 and recs["unet"]["config"]["train"]["lr"] == 3.16e-3
    assert references.train_references(space, tmp_path)["unet"]["lr"] == 3.16e-3 and len(calls) == 3  # cached
