"""plsearch.studies.runs: fixed configs x seeds, resumable, evaluated on the test split."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plsearch.config.gate import resolve
from plsearch.config.presets import preset_config
from plsearch.config.schema import RunConfig
from plsearch.studies.runs import (
    Job,
    RunsError,
    open_runs,
    results,
    run_jobs,
    submit,
    trivial_dice,
    work,
)

TINY = {
    "data.image_size": 32,
    "data.synthetic_count": 16,
    "train.epochs": 2,
    "train.batch_size": 8,
    "train.max_steps_per_epoch": 1,
    "train.augment": False,
    "train.lr": 0.003,
    "train.patience": 0,
    "train.num_threads": 1,
}


def tiny_jobs(seeds=(0, 1), test_curve=False):
    base = resolve(RunConfig(), TINY)
    model = preset_config("unet", base_width=4, depth=3)
    return [
        Job(
            f"unet/seed_{s}",
            replace(base, model=model, train=replace(base.train, seed=s)),
            group="unet",
            test_curve=test_curve,
        )
        for s in seeds
    ]


def completes_per_key(runs):
    from collections import Counter

    return Counter(t.user_attrs.get("job") for t in runs.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")


def test_runs_evaluate_the_test_split_and_keep_the_best_checkpoint(tmp_path):
    from plsearch.infer.evaluate import evaluate_checkpoint

    rows = run_jobs(tiny_jobs(seeds=(0,), test_curve=True), tmp_path, "t")
    (row,) = rows
    assert row["key"] == "unet/seed_0" and row["state"] == "COMPLETE"
    again = evaluate_checkpoint(row["checkpoint"], split="test")
    assert row["test_dice"] == pytest.approx(again["dice"], abs=1e-9)
    assert row["n_test"] == 3 and len(row["test_curve"]) == len(row["val_curve"]) == 2
    assert row["degenerate"] == (row["test_dice"] <= row["test_trivial_dice"])


def test_kill_then_resume_repeats_no_finished_run(tmp_path):
    jobs = tiny_jobs(seeds=(0, 1, 2))
    runs = open_runs(tmp_path, "t")
    assert submit(runs, jobs) == [j.key for j in jobs]

    class Killed(Exception):
        pass

    def die(row):
        raise Killed

    with pytest.raises(Killed):  # first run finishes, then the process "dies"
        work(runs, on_done=die)
    # a worker that died mid-run: its trial stays RUNNING, tagged with a pid that no longer exists
    trial = runs.study.ask()
    from plsearch.search import workers

    trial.set_user_attr("worker", f"{workers.HOST}:999999999:dead")
    again = open_runs(tmp_path, "t")
    assert submit(again, jobs) == []  # nothing new to enqueue: one done, one waiting, one running
    assert work(again) == 2
    assert completes_per_key(again) == {j.key: 1 for j in jobs}
    assert [r["key"] for r in results(again, [j.key for j in jobs])] == [j.key for j in jobs]
    assert run_jobs(jobs, tmp_path, "t") and completes_per_key(open_runs(tmp_path, "t")) == {j.key: 1 for j in jobs}


def test_a_key_with_another_config_is_refused(tmp_path):
    (job,) = tiny_jobs(seeds=(0,))
    runs = open_runs(tmp_path, "t")
    submit(runs, [job])
    other = replace(job, config=resolve(job.config, {"train.epochs": 3}))
    with pytest.raises(RunsError, match="another config"):
        submit(runs, [other])
    with pytest.raises(RunsError, match="key"):
        Job("../x", job.config)


def test_trivial_dice_is_the_better_constant_prediction():
    import torch

    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    masks[0, :2] = 1  # image 0 half foreground; image 1 empty
    # all background: image 0 Dice 0, image 1 Dice 1 (both empty) -> 0.5; all foreground: 2/3 and 0 -> 1/3
    assert trivial_dice(masks) == pytest.approx(0.5)
