"""The trivial-predictor rule: trivial_dice by hand, and an all-background network is infeasible, not a front point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from plsearch.train.metrics import evaluate_model, trivial_dice

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")


def test_trivial_dice_by_hand():
    masks = torch.zeros(3, 4, 4, dtype=torch.uint8)
    masks[0, :2] = 1  # half foreground: all-fg Dice 2*8/(16+8) = 2/3, all-bg 0
    masks[1] = 1  # all foreground: all-fg 1, all-bg 0
    # masks[2] empty: all-bg 1 (both empty), all-fg 0
    d = trivial_dice(masks)
    assert d["all_background"] == pytest.approx(1 / 3)
    assert d["all_foreground"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert d["best"] == d["all_foreground"]
    multi = torch.tensor([[[1, 1], [2, 2]], [[2, 2], [2, 2]]], dtype=torch.uint8)
    m = trivial_dice(multi, num_classes=3)
    # all class 2: image 0 -> class 1 Dice 0, class 2 Dice 2*2/(4+2); image 1 -> class 1 (absent both) 1, class 2 1
    assert m["all_foreground"] == pytest.approx(((0 + 4 / 6) / 2 + (1 + 1) / 2) / 2)
    with pytest.raises(ValueError):
        trivial_dice(torch.zeros(0, 4, 4))


class AllBackground(nn.Module):
    """Predicts background everywhere: logits -10 of shape (b, 1, h, w)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, *x.shape[2:]), -10.0)


def test_an_all_background_network_is_recorded_infeasible_and_never_on_the_front(tmp_path, monkeypatch):
    from plsearch.search import load_space, objective, run_search
    from plsearch.search.datacache import load_data

    def all_background(cfg, prof, metrics=(), on_epoch_end=None, **kwargs):
        val = load_data(cfg.data, cfg.model.num_classes)["val"]
        dice = evaluate_model(AllBackground(), val)["dice"]  # a real evaluation of the network on the split
        if on_epoch_end is not None:
            on_epoch_end(1, {"val_dice": dice, "val_iou": dice})
        return {"val_dice": dice, "val_iou": dice, "best_epoch": 1, "epochs_run": 1, "train_seconds": 0.0}

    monkeypatch.setattr(objective, "train_and_score", all_background)
    result = run_search(load_space(TINY), out_dir=tmp_path / "tiny", n_trials=2, references=False)
    recs = [r for r in result.records if r["metrics"] is not None]
    assert recs, "no trial trained"
    for r in recs:
        assert r["state"] == "COMPLETE" and r["feasible"] is False
        assert r["fail_reason"].startswith("degenerate: val Dice") and "trivial predictor" in r["fail_reason"]
    assert result.pareto == []
    # the table, the plot and the learning curves say how many there were
    from plsearch.report.study import draw_plots

    out = tmp_path / "tiny"
    assert f"{len(recs)} degenerate trial(s)" in (out / "pareto.md").read_text()
    plots = draw_plots(result.study, out)
    assert (out / "curves.png").is_file() and plots["curves"].endswith("curves.png")
    assert plots["dashboard"].startswith("optuna-dashboard figure") or plots["dashboard"].startswith("skipped")
