"""The search's --artifacts / --keep-top, reference weights, and its progress lines without a terminal.

Training is replaced by a stand-in that builds the real network and hands it to ``keep`` (no fit), so a
whole CLI search with references runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch

import plsearch
from plsearch.cli.search import main as search_main
from plsearch.infer.artifacts import ArtifactError, open_store, recorded_store

TINY = str(Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml")


def _fake_train(cfg, prof, metrics=(), on_epoch_end=None, keep=None):
    """The real network, untrained, kept as if trained; its val Dice falls with its size, so the smallest
    trial dominates the others and only it is on the front (tiny.yaml's first two trials differ in size)."""
    from plsearch.nn.model import PLNet

    torch.manual_seed(cfg.train.seed)
    model = PLNet.from_config(cfg.model)
    if keep is not None:
        keep(model.eval())
    dice = 0.85 - 0.2 * min(1.0, prof["params"] / 50_000) if prof and prof.get("params") else 0.7
    return {"val_dice": dice, "val_iou": dice / 2, "best_epoch": 1, "epochs_run": 1, "train_seconds": 0.0}


@pytest.fixture()
def fake_training(monkeypatch, tmp_path):
    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PLSEARCH_PROGRESS", raising=False)
    monkeypatch.delenv("PLSEARCH_STORAGE", raising=False)
    monkeypatch.setattr("plsearch.search.objective.train_and_score", _fake_train)


def _kept(study, store) -> dict[int, int]:
    """Trial number -> how many of its linked weight files are still in the store."""
    return {
        t.number: sum(
            (store / m.artifact_id).is_file() for m in optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)
        )
        for t in study.get_trials(deepcopy=False)
    }


def test_search_keeps_weights_in_the_named_store_with_references_and_progress(fake_training, tmp_path, capsys):
    out, store = tmp_path / "results" / "tiny", tmp_path / "shared" / "weights"
    args = ["--space", TINY, "--out", str(out), "--no-plots", "--n-trials", "2"]
    args += ["--artifacts", str(store), "--keep-top", "0"]
    assert search_main(args) == 0
    captured = capsys.readouterr()
    assert not (out / "artifacts").exists() and store.is_dir()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert recorded_store(study) == str(store.resolve())
    front = {t.number for t in study.best_trials}
    kept = {n for n, k in _kept(study, store).items() if k}
    assert len(front) == 1 and kept == front  # --keep-top 0: the Pareto set only
    linked = [optuna.artifacts.get_all_artifact_meta(t, storage=study._storage) for t in study.trials]
    assert sum(map(len, linked)) == 2  # the other one trained, was kept, and was removed from the store
    model = plsearch.load(f"{out}:{min(front)}")  # found through the study, not through out/artifacts
    assert not model.training
    # the reference's weights: a study artifact in the same store, recorded in references.json, loadable
    ref = json.loads((out / "references.json").read_text())["unet"]
    assert Path(ref["checkpoint"]).parent == store.resolve() and ref["artifact_id"]
    assert [m.filename for m in optuna.artifacts.get_all_artifact_meta(study, storage=study._storage)] == [
        "reference_unet.pt"
    ]
    assert plsearch.load(ref["checkpoint"]).config.to_dict() == ref["config"]["model"]
    assert not (out / "references" / "unet.pt").exists()  # moved into the store
    # progress on stderr, plain lines (capsys is not a terminal); results stay on stdout
    err = captured.err.splitlines()
    assert any(line.startswith("references: 0/1 ref (0%)") for line in err)
    assert any(line.startswith("references: 1/1 ref (100%)") and "done" in line for line in err)
    assert any(line.startswith("trials: 0/2 trial (0%)") for line in err)
    assert any(line.startswith("trials: 2/2 trial (100%)") and "best_val_dice=" in line for line in err)
    assert "\r" not in captured.err and "trials: " not in captured.out
    assert captured.out.count("\ntrial ") == 2 and "reference unet" in captured.out
    # a rerun without the flag keeps using the study's store; another store is refused in one line
    assert search_main(args[:-4]) == 0 and not (out / "artifacts").exists()
    capsys.readouterr()
    assert search_main([*args[:-4], "--artifacts", str(tmp_path / "elsewhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --artifacts") and "keeps its weights in" in err and "\n" not in err


@pytest.mark.parametrize("bad", ["file", "under_file", "keep_top"])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, capsys, bad):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    flag = {
        "file": ["--artifacts", str(a_file)],
        "under_file": ["--artifacts", str(a_file / "sub")],
        "keep_top": ["--keep-top", "-1"],
    }[bad]
    out = tmp_path / "out"
    assert search_main(["--space", TINY, "--out", str(out), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert ("--keep-top must be 0 or more" in err) if bad == "keep_top" else ("--artifacts" in err)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_open_store_records_reuses_and_refuses(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    store = open_store(study, tmp_path / "out")  # the default: <out>/artifacts
    assert recorded_store(study) == str((tmp_path / "out" / "artifacts").resolve())
    (tmp_path / "out" / "artifacts" / "w").write_text("weights")
    assert open_store(study, tmp_path / "moved")._base_path == store._base_path  # the recorded one wins
    with pytest.raises(ArtifactError, match="keeps its weights in"):
        open_store(study, tmp_path / "out", tmp_path / "other")


def test_worker_processes_get_the_flags(tmp_path):
    from plsearch.cli.search import _worker_command, build_parser

    args = build_parser().parse_args(["--space", TINY, "--artifacts", str(tmp_path / "w"), "--keep-top", "2"])
    cmd = _worker_command(args, TINY, tmp_path, "tiny", 4, 0, None, None)
    assert cmd[cmd.index("--artifacts") + 1] == str((tmp_path / "w").resolve())
    assert cmd[cmd.index("--keep-top") + 1] == "2"


def test_confirm_refuses_a_file_as_artifacts(tmp_path, capsys):
    from plsearch.cli.confirm import main as confirm_main

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert confirm_main(["--out", str(tmp_path / "nothing"), "--artifacts", str(a_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--artifacts" in err and "is a file" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_top_k_counts_only_feasible_trials(tmp_path):
    """An infeasible trial (a degenerate one, say) with the best value is not 'top': its weights go."""
    from plsearch.infer.artifacts import artifact_store, keep_checkpoint, prune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    store = artifact_store(tmp_path)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"0" * 100)

    def objective(trial):
        keep_checkpoint(trial, weights, store)
        trial.set_constraint("valid", 1.0 if trial.number == 0 else 0.0)  # trial 0 infeasible
        return [(0.9, 0.5, 0.4)[trial.number], 10.0 * (trial.number + 1)]

    study.optimize(objective, n_trials=3)
    assert prune(study, store, keep_top=1) == {"kept": 1, "removed": 2}  # front {1}; top-1 feasible: 1


def test_a_moved_store_is_named_and_a_copy_in_the_results_folder_is_found(tmp_path, monkeypatch):
    import shutil

    from plsearch.config.presets import preset_config
    from plsearch.infer.artifacts import artifact_store, keep_model
    from plsearch.nn.model import PLNet

    monkeypatch.setenv("PLSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out, shared = tmp_path / "results" / "s", tmp_path / "shared"
    out.mkdir(parents=True)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    cfg = preset_config("plnet-small", base_width=4, depth=3, in_channels=1)

    def objective(trial):
        keep_model(trial, PLNet.from_config(cfg), artifact_store(path=shared))
        return 0.5

    study.optimize(objective, n_trials=1)
    shutil.move(shared, tmp_path / "elsewhere")  # the shared disk is mounted elsewhere now
    with pytest.raises(ArtifactError) as e:
        plsearch.load(f"{out}:0")
    assert str(shared) in str(e.value) and f"copy its files into {out / 'artifacts'}" in str(e.value)
    shutil.copytree(tmp_path / "elsewhere", out / "artifacts")
    assert plsearch.load(f"{out}:0").config == cfg
