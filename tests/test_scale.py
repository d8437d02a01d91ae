"""Search at scale and under faults: several workers on a journal file or PostgreSQL, killed workers,
heartbeats, exact trial counts, surplus trimming, and storage URLs that never show their password.

PostgreSQL tests need ``PLSEARCH_TEST_POSTGRES_URL`` (``.ci/run`` starts a server); they skip without
it, and fail instead under ``PLSEARCH_REQUIRE_POSTGRES=1``. Trials are made slow on purpose by a
plug-in metric (``PLSEARCH_TEST_SLOW`` seconds) so that a worker can be killed in the middle of one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import slow_space
from optuna.trial import TrialState

from plsearch.cli.search import main
from plsearch.search.storage import (
    StorageError,
    StorageSpec,
    copy_sqlite_into_journal,
    open_storage,
    parse_storage,
    redact,
)
from plsearch.search.workers import HOST, counted, is_surplus, pid_alive, recover_stale, requeue


def postgres_url() -> str:
    """The test server's URL; skip (or fail under PLSEARCH_REQUIRE_POSTGRES=1) when there is none."""
    url = os.environ.get("PLSEARCH_TEST_POSTGRES_URL")
    why = "PLSEARCH_TEST_POSTGRES_URL is not set (.ci/run starts a server and sets it)"
    if url:
        try:
            import psycopg

            psycopg.connect(url, connect_timeout=3).close()
            return url
        except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
            why = f"PostgreSQL at {redact(url)} is unreachable ({type(e).__name__})"
    if os.environ.get("PLSEARCH_REQUIRE_POSTGRES") == "1":
        pytest.fail(why + "; PLSEARCH_REQUIRE_POSTGRES=1 makes this a failure")
    pytest.skip(why)


@pytest.fixture(params=["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request, tmp_path):
    """(storage argument for --storage or None, study name, opener) of a fresh shared storage; cleaned up after."""
    name = f"scale_{uuid.uuid4().hex[:8]}"
    if request.param == "journal":
        path = tmp_path / "out" / "study.journal"
        yield None, name, lambda: open_storage(StorageSpec("journal", str(path)))
        return
    url = postgres_url()
    store = optuna.storages.RDBStorage(url)  # one engine for all the polling
    yield url, name, lambda: store
    try:
        optuna.delete_study(study_name=name, storage=store)
    except KeyError:
        pass
    store.engine.dispose()


def _argv(space: str, tmp_path: Path, storage: str | None, name: str, n: int, workers: int = 3) -> list[str]:
    argv = [
        "--space",
        space,
        "--out",
        str(tmp_path / "out"),
        "--study-name",
        name,
        "--n-trials",
        str(n),
        "--workers",
        str(workers),
        "--no-plots",
        "--heartbeat",
        "1",
    ]
    return argv + (["--storage", storage] if storage else [])


def _check_exact(study: optuna.Study, n: int) -> list:
    trials = study.get_trials(deepcopy=False)
    assert sum(counted(t) for t in trials) == n
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


def _kill_a_running_worker(opener, name: str, deadline: float) -> tuple[int, dict]:
    """SIGKILL the worker of the first trial seen training; returns (its number, its params)."""
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name=name, storage=opener())
        except (KeyError, StorageError):  # the study, or on a busy machine its journal's folder, is not there yet
            continue
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            host, pid = t.user_attrs.get("worker", "::").split(":")[:2]
            if host == HOST and "config" in t.user_attrs and t.params:
                os.kill(int(pid), signal.SIGKILL)
                return t.number, t.params
    raise AssertionError("no trial was seen running")


def test_three_workers_finish_exactly_n_trials_when_one_is_killed(shared, tmp_path, capsys, monkeypatch):
    """3 workers in parallel, one SIGKILLed in the middle of a trial: its trial is failed and retried,
    and exactly n_trials finish, with unique numbers, none lost, none left running or waiting."""
    storage, name, opener = shared
    monkeypatch.setenv("PLSEARCH_TEST_SLOW", "1")
    code: list[int] = []
    argv = _argv(slow_space(tmp_path), tmp_path, storage, name, 4)
    runner = threading.Thread(target=lambda: code.append(main(argv)))
    runner.start()
    try:
        number, params = _kill_a_running_worker(opener, name, time.monotonic() + 60)
    finally:
        runner.join(120)
    assert code == [0]
    printed = capsys.readouterr()
    assert "ended by signal 9" in printed.out
    trials = _check_exact(optuna.load_study(study_name=name, storage=opener()), 4)
    assert len({t.user_attrs["worker"] for t in trials if counted(t)}) >= 2  # really in parallel
    killed = trials[number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["requeued"]
    assert "is gone" in killed.user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("requeued_from") == number]
    assert len(retry) == 1 and retry[0].params == params and retry[0].state == TrialState.COMPLETE
    records = [json.loads(x) for x in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["number"] for r in records if not r["requeued"]) == sorted(t.number for t in trials if counted(t))
    if storage:  # the password is in no printed line and in no file written
        password = storage.split(":")[2].split("@")[0]
        assert password not in printed.out + printed.err and ":***@" in printed.out
        for f in (tmp_path / "out").rglob("*"):
            assert not f.is_file() or password not in f.read_text(errors="ignore"), f


@pytest.mark.postgres
def test_heartbeat_fails_and_requeues_a_silent_trial_of_another_host(tmp_path):
    from plsearch.search import load_space, run_search

    url, name = postgres_url(), f"scale_{uuid.uuid4().hex[:8]}"
    space = load_space(slow_space(tmp_path))
    try:
        storage = open_storage(parse_storage(url, tmp_path), heartbeat=(1, 2))
        study = optuna.create_study(study_name=name, storage=storage, directions=space.directions)
        study.enqueue_trial({"model.ocs": 0.75})
        with pytest.warns(UserWarning, match="Heartbeat"):
            lost = study.ask()  # its worker (elsewhere: pids say nothing) sends one heartbeat, then dies
        lost.set_user_attr("worker", "another-host:123:x")
        study._storage.record_heartbeat(lost._trial_id)
        time.sleep(2.5)
        result = run_search(
            space, out_dir=tmp_path / "out", storage=url, study_name=name, n_trials=1, references=False, heartbeat=1
        )
        trials = _check_exact(result.study, 1)
        assert trials[0].state == TrialState.FAIL and "heartbeat" in trials[0].user_attrs["fail_reason"]
        assert trials[1].params == {"model.ocs": 0.75} and trials[1].user_attrs["requeued_from"] == 0
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_only_trials_of_dead_local_workers_are_stale(tmp_path):
    storage = open_storage(StorageSpec("journal", str(tmp_path / "s.journal")))
    study = optuna.create_study(storage=storage)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    zombie = subprocess.Popen(["true"])  # exits, never reaped: still in the process table
    while zombie.pid and Path(f"/proc/{zombie.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
        time.sleep(0.05)
    try:
        assert pid_alive(live.pid) and not pid_alive(dead.pid) and not pid_alive(zombie.pid)
        owners = [f"{HOST}:{live.pid}:r", f"{HOST}:{dead.pid}:r", f"{HOST}:{zombie.pid}:r", "elsewhere:1:r", ""]
        for i, w in enumerate(owners):
            study.enqueue_trial({"x": float(i)})
            t = study.ask()
            t.suggest_float("x", 0, 10)
            t.set_user_attr("worker", w)
        from datetime import datetime, timedelta

        from optuna.distributions import FloatDistribution
        from optuna.trial import FrozenTrial

        study.add_trial(
            FrozenTrial(  # an hour old, its pid now a process that started after it: pid reused
                number=5,
                state=TrialState.RUNNING,
                value=None,
                datetime_start=datetime.now() - timedelta(hours=1),
                datetime_complete=None,
                params={"x": 5.0},
                distributions={"x": FloatDistribution(0, 10)},
                user_attrs={"worker": owners[0]},
                system_attrs={},
                intermediate_values={},
                trial_id=0,
            )
        )
        assert recover_stale(study, "me") == [1, 2, 4, 5]
        states = [t.state for t in study.get_trials()]
        assert states[:6] == [
            TrialState.RUNNING,
            TrialState.FAIL,
            TrialState.FAIL,
            TrialState.RUNNING,
            TrialState.FAIL,
            TrialState.FAIL,
        ]
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert [t.system_attrs["fixed_params"] for t in waiting] == [{"x": 1.0}, {"x": 2.0}, {"x": 4.0}, {"x": 5.0}]
        assert recover_stale(study, "me") == []  # failed once, enqueued once
    finally:
        live.kill()
        live.wait()
        zombie.wait()


def test_surplus_trial_is_told_back_and_does_not_count(tmp_path):
    study = optuna.create_study(storage=open_storage(StorageSpec("journal", str(tmp_path / "s.journal"))))
    study.tell(study.ask(), 1.0)
    study.enqueue_trial({"x": 3.0})
    first, second = study.ask(), study.ask()  # two machines asked at once for the last slot of 2
    second.suggest_float("x", 0, 10)
    assert not is_surplus(study, first.number, 2) and is_surplus(study, second.number, 2)
    assert requeue(study, second._trial_id, "surplus: test", attr="surplus")
    told = study.get_trials()[second.number]
    assert told.state == TrialState.FAIL and told.user_attrs["surplus"] and not counted(told)
    assert not requeue(study, second._trial_id, "surplus: again", attr="surplus")  # the race's loser does nothing
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_one_worker_study_db_is_copied_into_a_journal_for_several(tmp_path):
    db = tmp_path / "study.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    for v in (1.0, 2.0):
        study.tell(study.ask(), v)
    before = db.read_bytes()
    spec = parse_storage(None, tmp_path, workers=3)
    assert spec.kind == "journal" and copy_sqlite_into_journal(tmp_path, "s", spec) == 2
    assert db.read_bytes() == before
    copied = optuna.load_study(study_name="s", storage=open_storage(spec))
    assert [t.value for t in copied.trials] == [1.0, 2.0]
    assert parse_storage(None, tmp_path, workers=1).kind == "journal"  # from now on the journal is the study
    from plsearch.report.study import load_study

    assert len(load_study(out_dir=tmp_path).trials) == 2  # and what plsearch.report.study reads


def test_devices_round_robin_and_storage_stays_off_the_command_line(tmp_path, monkeypatch, capsys):
    import plsearch.cli
    import plsearch.search.workers as workers

    seen: dict = {}

    def fake_launch(commands, env, on_line, **kw):
        seen.update(commands=commands, env=env)
        return [0] * len(commands)

    monkeypatch.setattr(plsearch.cli, "parse_device", lambda name: name)  # pretend the GPUs exist
    monkeypatch.setattr(workers, "launch", fake_launch)
    journal = tmp_path / "j.journal"
    assert (
        main(
            [
                "--space",
                slow_space(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--workers",
                "3",
                "--devices",
                "cuda:0,cuda:1",
                "--storage",
                str(journal),
                "--no-plots",
                "--n-trials",
                "2",
            ]
        )
        == 0
    )
    devices = [c[c.index("--device") + 1] for c in seen["commands"]]
    assert devices == ["cuda:0", "cuda:1", "cuda:0"]
    envs = seen["env"] if isinstance(seen["env"], list) else [seen["env"]]  # one per worker where CUDA caps differ
    assert all("--storage" not in c for c in seen["commands"])
    assert all(e["PLSEARCH_STORAGE"] == str(journal) for e in envs)
    assert "on cuda:0, cuda:1, cuda:0" in capsys.readouterr().out


def test_a_worker_that_dies_on_an_error_fails_the_search_with_one_line(tmp_path, monkeypatch, capsys):
    import plsearch.search.workers as workers

    monkeypatch.setattr(workers, "launch", lambda commands, env, on_line, **kw: [0, 1, 0])  # worker 1 crashed
    argv = ["--space", slow_space(tmp_path), "--out", str(tmp_path / "o"), "--workers", "3", "--no-plots"]
    assert main([*argv, "--storage", str(tmp_path / "j.journal"), "--n-trials", "2"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]  # beside the progress lines
    assert len(err) == 1 and "worker 1 stopped with an error" in err[0] and "0 of 2 trials" in err[0]
    assert "rerun the same command" in err[0]


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql://me:s3cret@db:5432/x", "postgresql://me:***@db:5432/x"),
        ("postgresql+psycopg://me:pa/ss@db/x", "postgresql+psycopg://me:***@db/x"),
        ("postgresql://me:p%40ss@db/x", "postgresql://me:***@db/x"),
        ("postgresql://me@db/x?password=s3cret&sslmode=require", "postgresql://me@db/x?password=***&sslmode=require"),
        ("could not parse 'postgresql//me:s3cret@db/x'", "could not parse 'postgresql//me:***@db/x'"),
        ("postgresql://db/x", "postgresql://db/x"),
        ("/tmp/study.journal", "/tmp/study.journal"),
    ],
)
def test_redact_url(text, shown, monkeypatch):
    # Passwords of storages opened by earlier tests are remembered process-wide (and hidden wherever they
    # appear); start from none so the expected text depends on this URL alone.
    import plsearch.redaction

    monkeypatch.setattr(plsearch.redaction, "_KNOWN", set())
    assert redact(text) == shown


def test_connection_errors_and_logs_never_show_the_password(tmp_path, monkeypatch, capsys):
    import logging

    import plsearch.cli

    url = "postgresql://nobody:Sup3r-s3cret@127.0.0.1:1/x"

    class Leaky(Exception):  # what SQLAlchemy raises when it quotes the URL it was given
        __module__ = "sqlalchemy.exc"

    def leaky_storage(target, **kwargs):
        raise Leaky(f"(psycopg.OperationalError) cannot connect to {target} with password Sup3r-s3cret")

    monkeypatch.setattr(optuna.storages, "RDBStorage", leaky_storage)
    assert main(["--space", slow_space(tmp_path), "--out", str(tmp_path / "o"), "--storage", url]) == 2
    out = capsys.readouterr()
    assert "Sup3r-s3cret" not in out.out + out.err and "nobody:***@127.0.0.1" in out.err
    plsearch.cli.setup_logging()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "connecting to %s", (url,), None)
    for handler in logging.getLogger().handlers:
        assert all(f.filter(record) for f in handler.filters)
    assert "Sup3r-s3cret" not in record.getMessage() and "nobody:***@" in record.getMessage()
