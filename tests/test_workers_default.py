"""The default worker count (one single-threaded worker per core for small CPU trials), the SQLite
snapshot a multi-worker run leaves for optuna-dashboard, and references trained in parallel."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from plsearch.search.storage import StorageSpec
from plsearch.search.workers import SMALL_STEP_MACS, default_workers, sqlite_snapshot, step_macs

DEFAULT_FIDELITY = {"model.base_width": 4, "data.image_size": 32, "train.batch_size": 8}


def test_small_cpu_trials_get_one_worker_per_core():
    macs = step_macs(DEFAULT_FIDELITY)
    assert macs is not None and 4e8 < macs < SMALL_STEP_MACS  # PL-Net at 32 px, batch 8, width 4: 0.5 GMAC
    assert default_workers(DEFAULT_FIDELITY, cpu=True, n_trials=14, cores=2) == 2
    assert default_workers(DEFAULT_FIDELITY, cpu=True, n_trials=14, cores=8) == 3  # >= 4 trials a worker
    assert default_workers(DEFAULT_FIDELITY, cpu=True, n_trials=3, cores=2) == 1


def test_large_trials_and_gpus_keep_one_worker():
    big = {**DEFAULT_FIDELITY, "data.image_size": 96, "train.batch_size": 16}
    assert step_macs(big) > SMALL_STEP_MACS
    assert default_workers(big, cpu=True, n_trials=60, cores=2) == 1
    assert default_workers(DEFAULT_FIDELITY, cpu=False, n_trials=60, cores=2) == 1
    assert default_workers({"data.image_size": "x"}, cpu=True, n_trials=60, cores=2) == 1  # cannot estimate


def _journal_study(out: Path, name: str, n: int) -> StorageSpec:
    spec = StorageSpec("journal", str(out / "study.journal"))
    from plsearch.search.storage import open_storage

    study = optuna.create_study(study_name=name, storage=open_storage(spec), directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=n)
    return spec


def test_snapshot_lets_sqlite_readers_see_the_journal_study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = _journal_study(tmp_path, "s", 3)
    assert sqlite_snapshot(tmp_path, "s", spec)
    loaded = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(loaded.trials) == 3 and all(t.state.name == "COMPLETE" for t in loaded.trials)
    assert sqlite_snapshot(tmp_path, "s", spec)  # a second run replaces its own snapshot
    assert not list(tmp_path.glob("*.writing"))


def test_snapshot_leaves_a_study_db_with_other_studies_alone(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="other", storage=f"sqlite:///{tmp_path / 'study.db'}")
    spec = _journal_study(tmp_path, "s", 1)
    assert not sqlite_snapshot(tmp_path, "s", spec)
    assert not sqlite_snapshot(tmp_path, "s", StorageSpec("sqlite", f"sqlite:///{tmp_path / 'x.db'}"))


@pytest.mark.slow
def test_references_train_in_parallel_as_they_do_one_by_one(tmp_path):
    from dataclasses import replace

    from plsearch.search.references import train_references
    from plsearch.search.space import load_space

    space = load_space(Path(__file__).parents[1] / "search_spaces/tiny.yaml")
    space = replace(space, references=("unet", "plnet-small"))
    one = train_references(space, tmp_path / "a")
    two = train_references(space, tmp_path / "b", workers=2)
    assert list(one) == list(two) == ["unet", "plnet-small"]
    for name in one:
        assert one[name]["key"] == two[name]["key"]
        assert one[name]["metrics"]["val_dice"] == pytest.approx(two[name]["metrics"]["val_dice"], abs=1e-4)
        # the weights come back from the worker process: written there, loadable here, the same network
        import plsearch

        assert Path(two[name]["checkpoint"]) == (tmp_path / "b" / "references" / f"{name}.pt").resolve()
        a, b = plsearch.load(one[name]["checkpoint"]), plsearch.load(two[name]["checkpoint"])
        assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
        assert not b.training and b.config.to_dict() == two[name]["config"]["model"]
