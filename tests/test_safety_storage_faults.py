"""Faults the storage must survive (issue 27): a PostgreSQL restart under a running multi-worker search, and a
full disk while a checkpoint, an artifact or the truth table is written.

The restart test needs ``PLSEARCH_TEST_POSTGRES_URL`` and ``PLSEARCH_TEST_PG_RESTART`` (a shell command that
restarts that server; ``.ci/run`` sets both); it skips without them, and fails instead under
``PLSEARCH_REQUIRE_POSTGRES=1``. The full-disk tests inject ``ENOSPC`` in the middle of a write.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import slow_space
from optuna.trial import TrialState

from plsearch.search.storage import redact
from plsearch.search.workers import counted


def _postgres() -> tuple[str, str]:
    """(URL, restart command) of the test server; skip (fail under PLSEARCH_REQUIRE_POSTGRES=1) without them."""
    url, restart = os.environ.get("PLSEARCH_TEST_POSTGRES_URL"), os.environ.get("PLSEARCH_TEST_PG_RESTART")
    why = "PLSEARCH_TEST_POSTGRES_URL or PLSEARCH_TEST_PG_RESTART is not set (.ci/run starts a server, sets both)"
    if url and restart:
        try:
            import psycopg

            psycopg.connect(url, connect_timeout=3).close()
            return url, restart
        except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
            why = f"PostgreSQL at {redact(url)} is unreachable ({type(e).__name__})"
    if os.environ.get("PLSEARCH_REQUIRE_POSTGRES") == "1":
        pytest.fail(why + "; PLSEARCH_REQUIRE_POSTGRES=1 makes this a failure")
    pytest.skip(why)


def _trials(url: str, name: str) -> list:
    store = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
    finally:
        store.engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restart_under_three_workers_loses_no_trial(tmp_path):
    """The server restarts while 3 workers search: each worker reconnects or ends with one line, a rerun
    resumes, and exactly n_trials finish: none lost, none duplicated, none left RUNNING."""
    url, restart = _postgres()
    name, n = f"faults_{uuid.uuid4().hex[:8]}", 9
    space = slow_space(tmp_path, "faults")
    argv = [sys.executable, "-m", "plsearch.search", "--space", space, "--out", str(tmp_path / "out")]
    argv += ["--study-name", name, "--n-trials", str(n), "--workers", "3", "--no-plots", "--heartbeat", "1"]
    argv += ["--storage", url]
    env = dict(os.environ, PLSEARCH_TEST_SLOW="1")
    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline, before = time.monotonic() + 120, []
            while time.monotonic() < deadline and proc.poll() is None:  # restart once trials finish and run
                time.sleep(0.3)
                try:
                    trials = _trials(url, name)
                except KeyError:
                    continue
                done = [t for t in trials if t.state == TrialState.COMPLETE]
                if done and any(t.state == TrialState.RUNNING for t in trials):
                    before = [(t.number, t.params) for t in done]
                    break
            assert before, "no trial finished while others ran"
            subprocess.run(restart, shell=True, check=True, timeout=60, capture_output=True)
            out, _ = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        (tmp_path / "search.log").write_text(out)  # kept by pytest for a look after a failure
        lines = out.splitlines()
        assert "Traceback" not in out, out[max(0, out.find("Traceback") - 1500) :][:5000]
        if proc.returncode != 0:  # ended with one line naming the database, then a rerun resumes
            assert proc.returncode == 2 and lines[-1].startswith("error: ") and "rerun" in lines[-1], out[-3000:]
            assert "plsearch-ci" not in out  # the password stays hidden
            again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
            assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
        trials = _trials(url, name)
        assert sum(counted(t) for t in trials) == n
        assert len({t.number for t in trials}) == len(trials)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        now = {t.number: (t.state, t.params) for t in trials}
        assert all(now[k] == (TrialState.COMPLETE, p) for k, p in before)  # no finished trial lost
        failed = [t for t in trials if t.state == TrialState.FAIL and counted(t)]
        assert not failed, [t.user_attrs.get("fail_reason") for t in failed]  # the restart failed no trial for good
    finally:
        try:
            optuna.delete_study(study_name=name, storage=url)
        except KeyError:
            pass


# ----------------------------------------------------------------------------- a full disk on the write path
def _enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def _fills_up(write, fail: list[bool]):
    """``write(obj, path)`` that, while ``fail[0]``, writes part of the file and then raises ENOSPC."""

    def faulty(obj, path, *args, **kwargs):
        if not fail[0]:
            return write(obj, path, *args, **kwargs)
        with open(path, "wb") as f:
            f.write(b"\0" * 100)
        raise _enospc()

    return faulty


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [x for x in err if x.startswith("error:") or "Traceback" in x]
    assert errors == err[-1:] and err[-1].startswith("error: the disk is full"), err
    assert "free space or choose another --out" in err[-1]
    return err[-1]


def test_full_disk_while_training_writes_a_checkpoint_then_a_rerun_completes(tmp_path, monkeypatch, capsys):
    import torch

    import plsearch.nn.checkpoint as checkpoint
    from plsearch.cli.train import main

    torch.set_num_threads(1)
    fail = [True]
    monkeypatch.setattr(checkpoint.torch, "save", _fills_up(torch.save, fail))
    argv = ["--model", "unet", "--set", "base_width=4", "--set", "depth=4", "--set", "data.synthetic_count=16"]
    argv += ["--set", "train.batch_size=8", "--set", "train.num_threads=1", "--image-size", "32", "--device", "cpu"]
    argv += ["--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    assert str(tmp_path / "run") in _one_line(capsys)
    assert not list((tmp_path / "run").glob("*.tmp")) and not list((tmp_path / "run").glob("*.pt"))
    fail[0] = False
    assert main(argv) == 0, capsys.readouterr().err
    for name in ("best.pt", "last.pt"):
        assert checkpoint.read_checkpoint(tmp_path / "run" / name)["format"] == checkpoint.FORMAT


def test_full_disk_while_replacing_a_checkpoint_keeps_the_old_one(tmp_path, monkeypatch):
    import torch

    import plsearch.nn.checkpoint as checkpoint
    from plsearch.outputs import DiskFullError

    path = tmp_path / "best.pt"
    checkpoint.save_checkpoint(path, {"w": torch.ones(2)}, model_config=None)
    monkeypatch.setattr(checkpoint.torch, "save", _fills_up(torch.save, [True]))
    with pytest.raises(DiskFullError, match="the disk is full: writing .*best.pt"):
        checkpoint.save_checkpoint(path, {"w": torch.zeros(2)}, model_config=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    assert checkpoint.read_checkpoint(path)["state_dict"]["w"].tolist() == [1.0, 1.0]


def test_full_disk_while_storing_an_artifact_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    import torch

    from plsearch.cli import run_cli
    from plsearch.infer.artifacts import artifact_store, keep_checkpoint
    from plsearch.nn.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "best.pt", {"w": torch.ones(2)}, model_config=None)
    study = optuna.create_study()
    store = artifact_store(tmp_path / "out")
    folder = tmp_path / "out" / "artifacts"
    kept = keep_checkpoint(study.ask(), ckpt, store)
    write, fail = store.write, [True]

    def faulty(artifact_id, body):
        if not fail[0]:
            return write(artifact_id, body)
        (folder / artifact_id).write_bytes(body.read(10))
        raise _enospc()

    monkeypatch.setattr(store, "write", faulty)
    trial = study.ask()
    assert run_cli(lambda: keep_checkpoint(trial, ckpt, store)) == 2
    assert str(folder) in _one_line(capsys)
    assert sorted(p.name for p in folder.iterdir()) == [kept]  # the earlier artifact intact, no partial one
    fail[0] = False
    again = keep_checkpoint(trial, ckpt, store)
    assert (folder / again).read_bytes() == ckpt.read_bytes() == (folder / kept).read_bytes()


def test_full_disk_while_appending_to_the_table_keeps_its_rows(tmp_path, monkeypatch, capsys):
    import plsearch.studies.table as table
    from plsearch.cli import run_cli

    path = tmp_path / "t.jsonl.gz"
    assert table.append_rows(path, [{"run": "a", "revision": "r"}]) == 1
    old = path.read_bytes()
    real, fail = Path.write_bytes, [True]

    def faulty(self, data):
        if not fail[0] or not self.name.endswith(".tmp"):
            return real(self, data)
        real(self, data[: len(data) // 2])
        raise _enospc()

    monkeypatch.setattr(Path, "write_bytes", faulty)
    assert run_cli(lambda: table.append_rows(path, [{"run": "b", "revision": "r"}])) == 2
    assert str(path) in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl.gz"] and path.read_bytes() == old
    fail[0] = False
    assert table.append_rows(path, [{"run": "b", "revision": "r"}]) == 2
    assert [r["run"] for r in table.read_rows(path)] == ["a", "b"]
