"""plsearch.search.optuna_private: every use of Optuna beyond its public API, one test per function, run against
the installed Optuna (an upgrade that moves a private name fails here first), and an AST scan holding that no
other plsearch module touches those names."""

from __future__ import annotations

import ast
import fcntl
import os
import re
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from plsearch.search import optuna_private as op

PKG = Path(__file__).resolve().parents[1] / "plsearch"
ADAPTER = PKG / "search" / "optuna_private.py"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(storage=None, name=None):
    return optuna.create_study(storage=storage, study_name=name)


# ----------------------------------------------------------------------------- handles
def test_storage_of_and_study_id():
    study = _study()
    storage = op.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert isinstance(op.study_id(study), int)
    assert storage.get_study_name_from_id(op.study_id(study)) == study.study_name
    assert op.has_storage(study) and not op.has_storage(SimpleNamespace(study_name="stand-in"))


def test_trial_id_of_a_trial_and_its_frozen_copy(tmp_path):
    storage = op.journal_storage(tmp_path / "s.journal")
    a, b = _study(storage, "a"), _study(storage, "b")
    ta, tb = a.ask(), b.ask()
    assert ta.number == tb.number == 0 and op.trial_id(ta) != op.trial_id(tb)  # unique across studies
    (frozen,) = a.get_trials()
    assert isinstance(op.trial_id(ta), int) and op.trial_id(frozen) == op.trial_id(ta)


# ----------------------------------------------------------------------------- reading trials
def test_frozen_trial_reads_one_trial_by_id_fresh():
    study = _study()
    trial = study.ask()
    trial.set_user_attr("worker", "me")
    frozen = op.frozen_trial(study, op.trial_id(trial))
    assert isinstance(frozen, FrozenTrial)
    assert (frozen.number, frozen.state, frozen.user_attrs) == (0, TrialState.RUNNING, {"worker": "me"})
    trial.set_user_attr("x", 1)
    assert op.frozen_trial(study, op.trial_id(trial)).user_attrs["x"] == 1


def test_fixed_params_are_the_enqueued_params_before_sampling():
    study = _study()
    study.enqueue_trial({"x": 1.5})
    enqueued, plain = study.ask(), study.ask()
    frozen = op.frozen_trial(study, op.trial_id(enqueued))
    assert frozen.params == {} and op.fixed_params(frozen) == {"x": 1.5}
    assert op.fixed_params(op.frozen_trial(study, op.trial_id(plain))) == {}
    study.enqueue_trial({"job": "a/seed_0"}, skip_if_exists=False)  # the run queue's jobs, still WAITING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [op.fixed_params(t) for t in waiting] == [{"job": "a/seed_0"}]


def test_constraint_values():
    study = _study()
    trial = study.ask()
    trial.set_constraint("valid", 0.0)
    trial.set_constraint("params", 2.5)
    frozen = op.frozen_trial(study, op.trial_id(trial))
    assert isinstance(frozen.constraints, dict)  # Optuna 5's shape
    assert sorted(op.constraint_values(frozen)) == [0.0, 2.5]
    older = SimpleNamespace(system_attrs={"constraints": [1.0, -1.0]})  # where Optuna 3/4 kept them
    assert op.constraint_values(older) == [1.0, -1.0]
    assert op.constraint_values(op.frozen_trial(study, op.trial_id(study.ask()))) == []


# ----------------------------------------------------------------------------- writing trials by id
def test_set_user_attr_by_id_writes_another_handles_trial_and_refuses_a_finished_one():
    study = _study()
    trial = study.ask()
    op.set_user_attr_by_id(study, op.trial_id(trial), "fail_reason", "interrupted")
    assert study.get_trials()[0].user_attrs["fail_reason"] == "interrupted"
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError):
        op.set_user_attr_by_id(study, op.trial_id(trial), "late", True)


def test_fail_by_id_lets_exactly_one_caller_win():
    study = _study()
    running, done = study.ask(), study.ask()
    study.tell(done, 1.0)
    assert op.fail_by_id(study, op.trial_id(running)) is True
    assert study.get_trials()[0].state == TrialState.FAIL
    assert op.fail_by_id(study, op.trial_id(running)) is False  # the race's loser
    assert op.fail_by_id(study, op.trial_id(done)) is False and study.get_trials()[1].state == TrialState.COMPLETE


# ----------------------------------------------------------------------------- heartbeats
@pytest.fixture
def beating(tmp_path):
    """A study on an RDB storage (SQLite) that records heartbeats, grace 1 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat_interval is experimental
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1, grace_period=1)
    return _study(storage)


def _ask(study):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def test_stale_trial_ids_lists_running_trials_whose_heartbeat_is_older_than_grace(beating):
    silent, never, done = _ask(beating), _ask(beating), _ask(beating)
    for t in (silent, done):
        op.storage_of(beating).record_heartbeat(op.trial_id(t))
    beating.tell(done, 1.0)
    assert op.stale_trial_ids(beating) == []
    time.sleep(2.2)  # SQLite's clock has whole seconds
    stale = op.stale_trial_ids(beating)
    assert stale == [op.trial_id(silent)] and op.trial_id(never) not in stale  # never beat: not stale


def test_heartbeat_thread_keeps_a_trial_fresh_and_stops(beating):
    kept, left = _ask(beating), _ask(beating)
    with op.Heartbeat(beating, left, 1):
        pass  # one heartbeat on entry, then silence
    with op.Heartbeat(beating, kept, 1) as hb:
        assert hb._thread is not None and hb._thread.is_alive()
        time.sleep(2.6)
        assert op.stale_trial_ids(beating) == [op.trial_id(left)]
    assert not hb._thread.is_alive()
    with op.Heartbeat(beating, kept, None) as off:  # no heartbeats: nothing recorded, no thread
        assert off._thread is None


# ----------------------------------------------------------------------------- a lost database connection
def test_retried_calls_are_the_storage_calls_and_ride_out_a_lost_connection(tmp_path, monkeypatch):
    import sqlalchemy.exc as sx
    from optuna.exceptions import StorageInternalError

    cache = Path(optuna.storages.__file__).parent / "_cached_storage.py"
    backend_calls = set(re.findall(r"_backend\.(\w+)\(", cache.read_text())) - {
        "get_heartbeat_interval",
        "get_heartbeat_stale_trial_callback",
    }
    assert backend_calls <= set(op.RETRIED_CALLS)  # every call Optuna's cache makes on an RDBStorage
    assert all(callable(getattr(optuna.storages.RDBStorage, n)) for n in op.RETRIED_CALLS)
    given_up: list[BaseException] = []
    storage = op.retrying_rdb_storage(
        f"sqlite:///{tmp_path / 's.db'}", patience=0.6, give_up=lambda e: given_up.append(e) or ValueError("gone")
    )
    study = _study(storage)
    real, failures = optuna.storages.RDBStorage.get_trial, [2]

    def flaky(self, trial_id):
        if failures[0]:
            failures[0] -= 1
            lost = sx.OperationalError("SELECT", {}, Exception("server closed the connection"))
            raise StorageInternalError("commit failed") from lost
        return real(self, trial_id)

    monkeypatch.setattr(optuna.storages.RDBStorage, "get_trial", flaky)
    tid = op.trial_id(study.ask())
    assert storage.get_trial(tid).number == 0 and failures == [0]  # retried twice, then read
    failures[0] = 100
    with pytest.raises(ValueError, match="gone"):  # still lost after `patience` seconds: give_up's error
        storage.get_trial(tid)
    assert op.lost_connection(given_up[0]) and not op.lost_connection(ValueError("x"))
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_trial", lambda self, i: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # not a connection: raised at once
        storage.get_trial(tid)


# ----------------------------------------------------------------------------- study system attrs
def test_study_system_attrs_round_trip_outside_user_attrs(tmp_path):
    storage = op.journal_storage(tmp_path / "s.journal")
    study = _study(storage, "s")
    assert op.study_system_attrs(study) == {}
    op.set_study_system_attr(study, "plsearch:artifact_store", "/some/where")
    again = optuna.load_study(study_name="s", storage=op.journal_storage(tmp_path / "s.journal"))
    assert op.study_system_attrs(again) == {"plsearch:artifact_store": "/some/where"}
    assert again.user_attrs == {}


# ----------------------------------------------------------------------------- the artifact store
def test_store_folder_and_artifact_file(tmp_path):
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    store = FileSystemArtifactStore(str(tmp_path / "artifacts"))
    (tmp_path / "artifacts").mkdir()
    assert op.store_folder(store) == (tmp_path / "artifacts").resolve()
    study = _study()
    trial = study.ask()
    src = tmp_path / "best.pt"
    src.write_bytes(b"weights")
    artifact_id = upload_artifact(artifact_store=store, file_path=str(src), study_or_trial=trial)
    path = op.artifact_file(store, artifact_id)
    assert path is not None and path.read_bytes() == b"weights"  # Optuna's layout: <folder>/<artifact id>
    store.remove(artifact_id)
    assert op.artifact_file(store, artifact_id) is None
    assert op.store_folder(object()) is None and op.artifact_file(object(), artifact_id) is None


# ----------------------------------------------------------------------------- the journal file
def test_journal_storage_takes_our_flock_and_frees_it(tmp_path):
    path = tmp_path / "s.journal"
    study = _study(op.journal_storage(path), "s")
    study.tell(study.ask(), 1.0)
    flock = Path(f"{path}.flock")
    assert flock.is_file() and not Path(f"{path}.lock").exists()  # ours, not Optuna's symlink lock
    fd = os.open(flock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after each write
        done = threading.Event()
        other = optuna.load_study(study_name="s", storage=op.journal_storage(path))
        writer = threading.Thread(target=lambda: (other.tell(other.ask(), 2.0), done.set()), daemon=True)
        writer.start()
        assert not done.wait(0.5)  # Optuna's writes wait for the lock we hold
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    writer.join(10)
    assert done.is_set() and [t.value for t in study.get_trials()] == [1.0, 2.0]


# ----------------------------------------------------------------------------- nobody else reaches past the API
PRIVATE_ATTRS = {"_storage", "_trial_id", "_study_id", "system_attrs", "_get_stale_trial_ids", "_base_path"}


def _private_uses(source: str) -> list[str]:
    """What ``source`` does with Optuna's private names: attributes, the same names as strings in
    ``getattr``/``hasattr``/``setattr``, and imports from ``optuna._*`` or ``optuna.storages._*``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRS:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("getattr", "hasattr", "setattr"):
            names = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            found += [(node.lineno, f"{ast.unparse(node.func)} {n!r}") for n in names if n in PRIVATE_ATTRS]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optuna":
                modules += [f"{node.module}.{a.name}" for a in node.names]
            for m in modules:
                parts = m.split(".")
                if parts[0] == "optuna" and any(p.startswith("_") for p in parts[1:]):
                    found.append((node.lineno, f"import {m}"))
    return [f"{line}: {what}" for line, what in sorted(set(found))]


def test_no_module_but_the_adapter_reaches_past_optunas_api():
    offenders = {
        str(p.relative_to(PKG)): uses
        for p in sorted(PKG.rglob("*.py"))
        if p != ADAPTER and (uses := _private_uses(p.read_text()))
    }
    assert offenders == {}
    assert _private_uses(ADAPTER.read_text())  # the scan sees what the adapter does


def test_the_scan_sees_each_kind_of_private_use():
    probe = (
        "from optuna.storages._heartbeat import is_heartbeat_enabled\n"
        "import optuna._hypervolume\n"
        "from optuna import _imports\n"
        "s = study._storage\n"
        "t.system_attrs\n"
        "hasattr(study, '_storage')\n"
        "from optuna.storages import RDBStorage\n"
    )
    assert sorted({int(u.split(":")[0]) for u in _private_uses(probe)}) == [1, 2, 3, 4, 5, 6]


def test_the_adapter_imports_no_other_plsearch_module():
    tree = ast.parse(ADAPTER.read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "plsearch"]
