"""Kept weights: a trial's best checkpoint round-trips through the study's Optuna artifacts."""

from __future__ import annotations

import optuna
import pytest
import torch

import plsearch
from plsearch.config.naming import parse_trial_ref
from plsearch.config.presets import preset_config
from plsearch.config.schema import DataConfig, RunConfig
from plsearch.infer.artifacts import (
    ArtifactError,
    artifact_store,
    keep_model,
    prune,
    store_bytes,
    trial_checkpoint,
)
from plsearch.nn.model import PLNet


@pytest.fixture()
def study_dir(tmp_path, monkeypatch):
    """A finished 2-objective study of 4 trials, each keeping its (tiny) model's weights."""
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = tmp_path / "results" / "s"
    out.mkdir(parents=True)
    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{out / 'study.db'}", directions=["maximize", "minimize"]
    )
    store = artifact_store(out)
    # (val Dice, size): trial 1 dominates 0; 2 is on the front; 3 is dominated by 1 and 2
    scores = [(0.5, 30.0), (0.7, 20.0), (0.9, 40.0), (0.6, 45.0)]

    def objective(trial):
        torch.manual_seed(trial.number)
        cfg = preset_config("plnet-small", base_width=4, depth=3, in_channels=1)
        model = PLNet.from_config(cfg)
        run = RunConfig(model=cfg, data=DataConfig(image_size=32 + 8 * trial.number))
        keep_model(trial, model, store, run_config=run)
        trial.set_user_attr("config", run.to_dict())  # what the search's objective records
        torch.save(model.state_dict(), out / f"eager_{trial.number}.pt")
        return scores[trial.number]

    study.optimize(objective, n_trials=4)
    return out, study, store


def test_round_trip_through_the_study(study_dir):
    out, study, _ = study_dir
    metas = optuna.artifacts.get_all_artifact_meta(study.trials[2], storage=study._storage)
    assert [m.filename for m in metas] == ["best.pt"]  # linked from the trial (what the dashboard lists)
    model = plsearch.load(f"{out}:2")
    assert not model.training and model.preprocessing.image_size == 48
    want = torch.load(out / "eager_2.pt", weights_only=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, want[k])
    assert trial_checkpoint(parse_trial_ref(f"{out}:2")).is_file()  # cached after the first download


def test_prune_keeps_the_front_and_the_top_k(study_dir):
    out, study, store = study_dir
    before = store_bytes(store)
    assert prune(study, store, keep_top=1) == {"kept": 2, "removed": 2}  # front {1, 2}; top-1 is 2
    assert 0 < store_bytes(store) < before
    plsearch.load(f"{out}:1")
    with pytest.raises(ArtifactError, match=r"are gone from the artifact store.*plsearch.train --trial"):
        plsearch.load(f"{out}:3")
    assert prune(study, store, keep_top=1) == {"kept": 2, "removed": 0}  # idempotent


def test_missing_trial_and_trial_without_weights(study_dir, tmp_path):
    out, study, _ = study_dir
    with pytest.raises(ArtifactError, match="has no trial 9"):
        plsearch.load(f"{out}:9")
    study.enqueue_trial({})
    study.ask()  # a running trial that kept nothing
    with pytest.raises(ArtifactError, match=r"kept no weights \(it is RUNNING\)"):
        plsearch.load(f"{out}:4")


@pytest.mark.slow  # a real 2-trial search (~20 s on an idle 2-core CPU)
def test_a_search_keeps_each_trained_trials_weights(tmp_path, monkeypatch):
    from pathlib import Path

    from plsearch.search.runner import run_search
    from plsearch.search.space import load_space

    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "tiny"
    tiny = Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml"
    result = run_search(load_space(tiny), out_dir=out, n_trials=2, references=False)
    storage = result.study._storage
    trained = [t for t in result.study.trials if optuna.artifacts.get_all_artifact_meta(t, storage=storage)]
    assert trained, "no trial kept weights"
    trained = [  # still in the store: infeasible (degenerate) trials off the front lose theirs
        t
        for t in trained
        if any(
            (out / "artifacts" / m.artifact_id).is_file()
            for m in optuna.artifacts.get_all_artifact_meta(t, storage=storage)
        )
    ]
    assert trained and {t.number for t in trained} >= {t.number for t in result.study.best_trials}
    t = trained[0]
    model = plsearch.load(f"{out}:{t.number}")
    assert model.config.to_dict() == t.user_attrs.get("config", {}).get("model", model.config.to_dict())
    assert (out / "artifacts").is_dir() and store_bytes(artifact_store(out)) > 0


@pytest.mark.slow  # evaluate + two exports through the CLIs
def test_evaluate_and_export_take_a_trial(study_dir, capsys):
    from plsearch.cli.evaluate import main as evaluate_main
    from plsearch.cli.export import main as export_main

    out, _, _ = study_dir
    assert evaluate_main(["--trial", f"{out}:1", "--device", "cpu", "--count", "1"]) == 0
    assert (out / "eval_trial1_test" / "metrics.json").is_file()
    assert export_main(["--trial", f"{out}:1", "--format", "torchscript", "--out", str(out / "t1.pt")]) == 0
    assert "largest difference" in capsys.readouterr().out
    assert export_main(["--trial", f"{out}:7", "--format", "onnx", "--out", str(out / "t7.onnx")]) == 2
    assert "has no trial 7" in capsys.readouterr().err


@pytest.mark.slow  # a (one-step) training run through the CLI
def test_train_retrains_a_trials_config(study_dir, tmp_path, capsys):
    import yaml

    from plsearch.cli.train import main as train_main

    out, study, _ = study_dir
    run = tmp_path / "retrained"
    code = train_main(
        [
            "--trial",
            f"{out}:1",
            "--epochs",
            "1",
            "--set",
            "train.max_steps_per_epoch=1",
            "--set",
            "data.synthetic_count=16",
            "--set",
            "train.batch_size=4",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    recorded = study.trials[1].user_attrs["config"]
    same = {k: v for k, v in cfg["model"].items() if k != "in_channels"}  # channels follow the (RGB) data
    assert same == {k: v for k, v in recorded["model"].items() if k != "in_channels"}
    assert cfg["data"]["image_size"] == 40 and cfg["train"]["epochs"] == 1
