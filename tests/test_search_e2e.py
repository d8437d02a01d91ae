"""End to end: ``python -m plsearch.search`` on tiny.yaml (synthetic data), outputs, resume, recovery."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from plsearch.cli.search import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")


@pytest.fixture(scope="module")
def two_trials(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "tiny"
    assert main(["--space", TINY, "--out", str(out), "--n-trials", "2", "--no-plots", "--no-references"]) == 0
    return out


def test_full_search_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--space", TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\ntrial ") + printed.startswith("trial ") == 3
    assert "reference unet" in printed and "| trial |" in printed
    for name in (
        "study.db",
        "trials.jsonl",
        "pareto.csv",
        "pareto.md",
        "pareto.png",
        "history.png",
        "hypervolume.png",
        "references.json",
    ):
        assert (out / name).is_file(), name
    recs = _records(out)
    assert [r["number"] for r in recs] == [0, 1, 2]
    r = recs[0]
    for key in (
        "state",
        "params",
        "config",
        "metrics",
        "profile",
        "seed",
        "versions",
        "git_rev",
        "seconds",
        "fail_reason",
        "val_dice_curve",
    ):
        assert key in r
    assert set(r["versions"]) == {"torch", "optuna", "plsearch", "python"}
    yamls = sorted((out / "pareto").glob("trial_*.yaml"))
    assert yamls
    from plsearch.nn.model import PLNet

    for y in yamls:
        model = PLNet.from_config(yaml.safe_load(y.read_text()))
        n = int(y.stem.split("_")[1])
        rec = next(x for x in recs if x["number"] == n)
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == rec["profile"]["params"]
    # the study opens as is in the optuna CLI / dashboard
    assert len(_study(out).trials) == 3
    # the references are cached: a rerun trains nothing new
    assert main(["--space", TINY, "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "reference unet" in printed and "cached" in printed and "\ntrial " not in printed


def test_resume_runs_only_the_remaining_trials(two_trials, tmp_path):
    import shutil

    out = tmp_path / "resume"
    shutil.copytree(two_trials, out)
    before = _records(out)
    assert len(before) == 2
    assert main(["--space", TINY, "--out", str(out), "--n-trials", "3", "--no-plots", "--no-references"]) == 0
    after = _records(out)
    assert [r["number"] for r in after] == [0, 1, 2]
    for a, b in zip(before, after[:2]):
        assert a == b  # untouched
    assert main(["--space", TINY, "--out", str(out), "--n-trials", "3", "--no-plots", "--no-references"]) == 0
    assert len(_records(out)) == 3  # nothing left to do


def test_stale_running_trial_is_failed_and_requeued(two_trials, tmp_path, capsys):
    import shutil

    out = tmp_path / "stale"
    shutil.copytree(two_trials, out)
    study = _study(out)
    params = {"model.steps": 1, "model.stages": 1, "model.ocs": 0.5}
    study.enqueue_trial(params)
    killed = study.ask()  # a worker that died mid-trial leaves it RUNNING
    killed.set_user_attr("worker", "some-host-that-is-gone:1:x")
    assert main(["--space", TINY, "--out", str(out), "--n-trials", "3", "--no-plots", "--no-references"]) == 0
    # another host's trial may still run: left alone
    assert _study(out).trials[killed.number].state == optuna.trial.TrialState.RUNNING
    study._storage.set_trial_user_attr(killed._trial_id, "worker", "")  # unknown owner on this host: stale
    assert main(["--space", TINY, "--out", str(out), "--n-trials", "4", "--no-plots", "--no-references"]) == 0
    assert "re-queued interrupted trial(s) [2]" in capsys.readouterr().out
    trials = _study(out).trials
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[2].user_attrs["requeued"]
    rerun = [t for t in trials if t.user_attrs.get("requeued_from") == 2]
    assert len(rerun) == 1 and rerun[0].params == params and rerun[0].state.is_finished()
    recs = _records(out)
    assert sum(1 for r in recs if not r["requeued"]) == 4
    assert len({r["number"] for r in recs}) == len(recs)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--space", TINY, "--data", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data folder") and err.count("\n") == 1
    assert main(["--space", TINY, "--set", "model.steps=2", "--out", str(tmp_path)]) == 2
    assert "searches" in capsys.readouterr().err
    assert main(["--space", TINY, "--n-trials", "0"]) == 2
    assert "--n-trials must be positive" in capsys.readouterr().err


def test_ctrl_c_requeues_the_running_trial(two_trials, tmp_path, monkeypatch):
    import shutil

    import plsearch.search.objective as objective
    from plsearch.search import load_space, run_search

    out = tmp_path / "ctrl_c"
    shutil.copytree(two_trials, out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(objective, "train_and_score", interrupted)
    monkeypatch.setattr(objective, "_duplicate_of", lambda trial, config: None)  # train even a repeated config
    space = load_space(TINY)
    with pytest.raises(KeyboardInterrupt):
        run_search(space, out_dir=out, n_trials=3, references=False)
    monkeypatch.undo()
    trials = _study(out).trials
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[2].user_attrs["requeued"]
    assert "KeyboardInterrupt" in trials[2].user_attrs["fail_reason"]
    result = run_search(space, out_dir=out, n_trials=3, references=False)
    assert result.ran == 1
    trials = _study(out).trials
    assert trials[3].params == trials[2].params and trials[3].user_attrs["requeued_from"] == 2
