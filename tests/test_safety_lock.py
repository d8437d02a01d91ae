"""One writer per output folder (issue 27): ``plsearch.locks`` and the CLIs that hold it.

A second writer of a folder is refused with one line naming the holder (host, pid, since) and the
fix; a lock left by a killed process is taken over with a warning; the lock goes with the block,
on an exception too; a lock file never makes a folder look foreign to ``plsearch.outputs``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plsearch.locks import LOCK_NAME, FolderBusyError, FolderLock, hold_folder, read_holder
from plsearch.outputs import RUN_FILES, OutputError, claim_folder, claim_results

HOLD = """
import sys
from plsearch.locks import hold_folder
with hold_folder(sys.argv[1], command=sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""

# Holds the flock of a lock file that records another (dead) pid: a killed holder's surviving child.
HOLD_AS = """
import fcntl, json, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, sys.argv[2].encode())
print("held", flush=True)
sys.stdin.readline()
"""


def _child(*argv: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def _end(p: subprocess.Popen) -> None:
    assert p.stdin is not None
    p.stdin.close()
    p.wait(30)


@pytest.fixture
def held_by_child(tmp_path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A folder (holding a user's file) whose lock another process holds, as train would."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    p = _child(HOLD, str(folder), "train")
    try:
        yield folder, p
    finally:
        _end(p)
    assert not (folder / LOCK_NAME).exists()  # the holder released it on its way out


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_second_holder_is_refused_with_the_holder_named(tmp_path):
    with hold_folder(tmp_path, command="train") as lock:
        assert lock.held and read_holder(tmp_path)["pid"] == os.getpid()
        with pytest.raises(FolderBusyError) as e:
            FolderLock(tmp_path).acquire()
    assert isinstance(e.value, ValueError)  # run_cli: one line, exit 2
    text = str(e.value)
    assert "\n" not in text
    assert f"pid {os.getpid()} on {socket.gethostname()}" in text and "train" in text and "since 20" in text
    assert "wait for it to end, or pick another --out" in text


def test_released_on_exit_and_on_exception(tmp_path):
    with hold_folder(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(RuntimeError), hold_folder(tmp_path):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with hold_folder(tmp_path):  # free again
        pass
    new = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), hold_folder(new):
        assert new.is_dir()
        raise RuntimeError("refused before any write")
    assert not new.exists()  # the folder the lock made, still empty, goes too
    with hold_folder(new):
        (new / "log.jsonl").write_text("{}\n")
    assert sorted(p.name for p in new.iterdir()) == ["log.jsonl"]  # a folder with outputs stays


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, caplog):
    dead = _dead_pid()
    old = {"host": socket.gethostname(), "pid": dead, "command": "train", "since": "2020-01-01T00:00:00+00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(old))  # killed: its file stayed, its flock went with it
    with caplog.at_level(logging.WARNING, logger="plsearch.locks"), hold_folder(tmp_path):
        assert read_holder(tmp_path)["pid"] == os.getpid()
    assert f"pid {dead} on {socket.gethostname()}" in caplog.text and "gone" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_dead_holder_whose_flock_lives_on_is_taken_over(tmp_path, caplog):
    """The recorded pid is dead on this host but a process (its forked child) still holds the flock."""
    dead = _dead_pid()
    record = json.dumps({"host": socket.gethostname(), "pid": dead, "since": "2020-01-01T00:00:00+00:00"})
    p = _child(HOLD_AS, str(tmp_path / LOCK_NAME), record)
    try:
        with caplog.at_level(logging.WARNING, logger="plsearch.locks"), hold_folder(tmp_path):
            assert read_holder(tmp_path)["pid"] == os.getpid()
            with pytest.raises(FolderBusyError, match=f"pid {os.getpid()} "):
                FolderLock(tmp_path).acquire()
    finally:
        _end(p)
    assert f"pid {dead} " in caplog.text


def test_a_live_holder_of_another_host_is_never_judged_dead(tmp_path):
    record = json.dumps({"host": "elsewhere.example", "pid": _dead_pid(), "since": "2020-01-01T00:00:00+00:00"})
    p = _child(HOLD_AS, str(tmp_path / LOCK_NAME), record)
    try:
        with pytest.raises(FolderBusyError, match=f"on elsewhere.example.*delete {tmp_path / LOCK_NAME}"):
            FolderLock(tmp_path).acquire()
    finally:
        _end(p)


def test_a_lock_file_never_makes_a_folder_foreign(tmp_path):
    run, results = tmp_path / "run", tmp_path / "results"
    for folder in (run, results):
        folder.mkdir()
        (folder / LOCK_NAME).write_text(json.dumps({"host": "h", "pid": 1}))  # a stale one, left behind
    claim_folder(run, "run", targets=RUN_FILES, adopt=("config.yaml", "log.jsonl"))
    claim_results(results, "study_a")
    with hold_folder(tmp_path / "held"):  # held, in a new folder
        claim_folder(tmp_path / "held", "run", targets=RUN_FILES)
    with hold_folder(tmp_path / "held2"):
        claim_results(tmp_path / "held2", "study_b")
    with pytest.raises(OutputError):  # the marker still decides
        claim_results(results, "study_c")


def test_train_refuses_a_run_folder_another_process_writes(held_by_child, capsys):
    from plsearch.cli.train import main

    folder, holder = held_by_child
    before = _snapshot(folder)
    code = main(["--out", str(folder), "--epochs", "1", "--image-size", "16", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"pid {holder.pid} on {socket.gethostname()}" in err[0] and "train" in err[0]
    assert "pick another --out" in err[0]
    assert _snapshot(folder) == before  # nothing written, the holder's lock file untouched


def test_search_and_fidelity_refuse_a_folder_another_process_writes(held_by_child, capsys):
    from plsearch.cli.fidelity import main as fidelity_main
    from plsearch.cli.search import main as search_main

    folder, holder = held_by_child
    before = _snapshot(folder)
    space = "search_spaces/tiny.yaml"
    assert search_main(["--space", space, "--out", str(folder), "--n-trials", "1", "--workers", "2"]) == 2
    fid = ["--space", space, "--configs", "2", "--high", "train.epochs=2", "--no-references", "--out", str(folder)]
    assert fidelity_main(fid) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") and f"pid {holder.pid} " in line for line in err)
    assert _snapshot(folder) == before


def test_workers_of_a_held_folder_take_no_lock(held_by_child, capsys):
    """The processes a launcher starts (``plsearch.runs`` here, ``search --worker-index`` alike) share its folder."""
    from plsearch.cli.runs import main as runs_main

    folder, _ = held_by_child
    assert runs_main(["--out", str(folder), "--study", "nothing-waiting"]) == 0
    assert (folder / "runs.journal").is_file()
