"""plsearch.studies.confirm: the non-domination rule, bad input, and the tiny space end to end (slow)."""

from __future__ import annotations

import csv
import json
import math
import warnings

import pytest

from plsearch.studies.confirm import dominates, mark_nondominated


def item(label, mean, sd, n=3, params=100, macs=100, degenerate=0):
    return {
        "label": label,
        "test_dice": mean,
        "test_dice_sd": sd,
        "n": n,
        "params": params,
        "macs": macs,
        "degenerate": degenerate,
    }


def test_dominated_only_when_no_larger_and_better_by_more_than_the_pooled_standard_error():
    small_good = item("a", 0.80, 0.03, params=50, macs=50)
    big_bad = item("b", 0.70, 0.03)
    close = item("c", 0.78, 0.03)  # 0.02 behind a; pooled se = sqrt(2) * 0.03 / sqrt(3) = 0.0245
    assert dominates(small_good, big_bad) and not dominates(big_bad, small_good)
    assert not dominates(small_good, close)  # within the spread: both stay
    assert not dominates(item("d", 0.99, 0.0, params=101), big_bad)  # larger in params: never dominates
    assert dominates(item("e", 0.75, math.nan, n=1), item("f", 0.70, math.nan, n=1))  # one run: se 0
    items = [small_good, big_bad, close, item("deg", 0.5, 0.0, params=1, macs=1, degenerate=3)]
    mark_nondominated(items)
    assert [i["non_dominated"] for i in items] == [True, False, True, False]
    assert items[1]["dominated_by"] == ["a", "c"] and items[3]["dominated_by"] == []
    mark_nondominated(items, sizes=("params",))
    assert items[2]["dominated_by"] == []


def fake_study(folder, n_trials=3):
    """A finished search in folder/study.db without training: trial 0 trained, 1 infeasible, 2 trained."""
    import optuna
    import yaml

    from plsearch.config.schema import RunConfig
    from plsearch.search.study import SPACE_ATTR

    with open("search_spaces/tiny.yaml") as f:
        raw = yaml.safe_load(f)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}", directions=["maximize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is "experimental"
        study.set_metric_names(["val_dice", "params"])
    study.set_user_attr(SPACE_ATTR, raw)
    cfg = RunConfig().to_dict()
    for n in range(n_trials):
        ok = n != 1
        attrs = {
            "feasible": ok,
            "config": cfg if ok else None,
            "profile": {"params": 10 + n, "macs": 5},
            "metrics": {"val_dice": 0.5} if ok else None,
            "fail_reason": None if ok else "over budget",
        }
        study.add_trial(optuna.trial.create_trial(values=[0.5 - n / 10, 10 + n], user_attrs=attrs))
    return study


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "--seeds must be positive"),
        (["--trials", "7"], "trial 7 does not exist"),
        (["--trials", "1"], "trial 1 of study 'tiny' was not trained (over budget)"),
        (["--trials", "x"], "not a list of trial numbers"),
        (["--folds", "1"], "--folds must be at least 2"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    from plsearch.cli.confirm import main

    fake_study(tmp_path)
    capsys.readouterr()
    assert main(["--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_no_study_in_out_is_one_line(tmp_path, capsys):
    from plsearch.cli.confirm import main

    assert main(["--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no study in" in err[0]


@pytest.mark.slow
def test_confirm_tiny_space_two_trials_two_seeds_end_to_end_and_resume(tmp_path, capsys):
    from plsearch.cli.confirm import main
    from plsearch.cli.search import main as search

    out = tmp_path / "tiny"
    assert search(["--space", "search_spaces/tiny.yaml", "--out", str(out), "--no-references", "--no-plots"]) == 0
    capsys.readouterr()
    recs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    picked = [r["number"] for r in recs if r.get("feasible")][:2]  # degenerate trials are not confirmed
    assert len(picked) == 2, recs
    chosen = ",".join(map(str, picked))
    assert main(["--out", str(out), "--trials", chosen, "--seeds", "2", "--no-references"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert printed.count("\nrun trial_") + printed.startswith("run trial_") == 4
    # progress on stderr (not a terminal: plain lines), the run lines on stdout; weights kept in confirm/artifacts
    assert "confirm runs: 0/4 run (0%)" in captured.err and "confirm runs: 4/4 run (100%)" in captured.err
    assert len([f for f in (out / "confirm" / "artifacts").iterdir() if f.is_file()]) == 4
    with open(out / "confirm" / "confirmed.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [f"trial_{n}" for n in picked] and all(r["n"] == "2" for r in rows)
    assert all(len(r["test_dice_runs"].split(";")) == 2 for r in rows)
    assert (out / "confirm" / "confirmed.png").is_file()
    assert "non-dominated" in (out / "confirm" / "confirmed.md").read_text()
    assert main(["--out", str(out), "--trials", chosen, "--seeds", "2", "--no-references"]) == 0
    assert "run trial_" not in capsys.readouterr().out  # resumed: no finished seed repeated
    assert main(["--out", str(out), "--trials", chosen, "--seeds", "3", "--no-references", "--artifacts", "x"]) == 2
    assert "keeps its weights in" in capsys.readouterr().err  # another store than the recorded one
    assert main(["--out", str(out), "--trials", chosen, "--seeds", "3", "--no-references"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("run trial_") == 2  # only the new seed
    assert "confirm runs: 4/6 run" in captured.err


def test_a_width_override_scales_presets_like_the_search_references():
    from plsearch.config.presets import preset_config
    from plsearch.config.schema import RunConfig
    from plsearch.studies.confirm import Candidate, confirm_jobs

    cands = [
        Candidate("trial_1", "trial", RunConfig()),
        Candidate("unet", "preset", RunConfig(model=preset_config("unet"))),
    ]
    jobs = confirm_jobs(cands, {"model.base_width": 16}, seeds=2)
    assert [j.key for j in jobs] == ["trial_1/seed_0", "unet/seed_0", "trial_1/seed_1", "unet/seed_1"]
    assert [j.config.model.base_width for j in jobs[:2]] == [16, 32]  # U-Net keeps twice PL-Net's width
    assert [j.config.train.seed for j in jobs] == [0, 0, 1, 1]


def test_confirm_section_of_a_space_file():
    import yaml

    from plsearch.search.confirm_section import parse_confirm_section
    from plsearch.search.space import SearchSpaceError, load_space, parse_space

    sec = parse_confirm_section({"fidelity": {"train.epochs": 30}, "folds": 5})
    assert sec.fidelity == {"train.epochs": 30} and sec.folds == 5 and sec.seeds == 3 and sec.references
    assert load_space("search_spaces/ipl_epl.yaml").raw["confirm"]["seeds"] == 3
    with open("search_spaces/tiny.yaml") as f:
        raw = yaml.safe_load(f)
    for bad, message in (
        ({"seed": 2}, "unknown key 'seed'"),
        ({"seeds": 0}, "confirm.seeds=0"),
        ({"folds": 1}, "confirm.folds=1"),
        ({"fidelity": {"epochs": 3}}, "dotted config path"),
        ({"fidelity": {"train.epochs": 0}}, "train.epochs"),
    ):
        with pytest.raises(SearchSpaceError, match=message):
            parse_space({**raw, "confirm": bad}, "t")
