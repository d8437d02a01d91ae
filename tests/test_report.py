"""``python -m plsearch.report`` redraws tables and PNGs from storage alone (synthetic trials, no training)."""

from __future__ import annotations

import json
import random
import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from plsearch.cli.report import main

DISTS = {
    "model.steps": IntDistribution(1, 4),
    "model.ocs": FloatDistribution(0.5, 2.0, step=0.25),
    "model.plan": CategoricalDistribution(["table1", "bionet"]),
}


def _fake_study(path, n: int = 8) -> optuna.Study:
    study = optuna.create_study(study_name="fake", storage=f"sqlite:///{path}", directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["val_dice", "macs"])
    study.set_user_attr("plsearch:space", {"constraints": {"macs": 5.0e6}})
    rng = random.Random(0)
    for i in range(n):
        params = {
            "model.steps": rng.randint(1, 4),
            "model.ocs": rng.choice([0.5, 1.0, 1.5, 2.0]),
            "model.plan": rng.choice(["table1", "bionet"]),
        }
        macs = int(1e6 * params["model.steps"] * params["model.ocs"] ** 2)
        dice = 0.5 + 0.1 * params["model.steps"] + rng.random() * 0.05
        model = {
            "base_width": 4,
            "steps": params["model.steps"],
            "ocs": params["model.ocs"],
            "plan": params["model.plan"],
        }
        state = TrialState.PRUNED if i == 3 else TrialState.COMPLETE
        study.add_trial(
            create_trial(
                state=state,
                values=[dice, macs] if state == TrialState.COMPLETE else None,
                params=params,
                distributions=DISTS,
                user_attrs={
                    "feasible": True,
                    "profile": {"params": macs // 100, "macs": macs, "latency_ms": None},
                    "metrics": {"val_dice": dice, "val_iou": dice * 0.8},
                    "val_dice_curve": [dice / 2, dice],
                    "config": {"model": model},
                },
                system_attrs={"constraints:valid": 0.0},
            )
        )
    return study


def test_report_redraws_from_the_out_folder(tmp_path, capsys):
    _fake_study(tmp_path / "study.db")
    (tmp_path / "references.json").write_text(
        json.dumps({"plnet": {"profile": {"params": 30000, "macs": 2.0e6}, "metrics": {"val_dice": 0.6}}})
    )
    assert main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "study fake" in printed and "| trial |" in printed
    for name in (
        "pareto.png",
        "history.png",
        "hypervolume.png",
        "importances.png",
        "pareto.md",
        "pareto.csv",
        "trials.jsonl",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 8
    assert list((tmp_path / "pareto").glob("trial_*.yaml"))


def test_report_from_storage_url_and_too_few_trials(tmp_path, capsys):
    _fake_study(tmp_path / "other.db", n=3)
    out = tmp_path / "report"
    assert main(["--storage", f"sqlite:///{tmp_path / 'other.db'}", "--study", "fake", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "importances: importances skipped" in printed
    assert (out / "pareto.png").is_file() and not (out / "importances.png").exists()


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "study.db does not exist" in err and err.count("\n") == 1
    _fake_study(tmp_path / "study.db")
    assert main(["--out", str(tmp_path), "--study", "nope"]) == 2
    assert "choose one of fake" in capsys.readouterr().err
