"""Several workers, one study: trial ownership, stale-trial recovery, exact counts, heartbeats, and the launcher.

- Ownership: every trial a worker asks for is tagged at once (user attr ``worker`` = ``host:pid:run``).
- Stale: a RUNNING trial whose worker is gone is failed (``fail_reason`` "interrupted ...",
  ``requeued`` true) and its params are enqueued, so that the next trial asked trains them again.
  Gone means: on this host and its pid is dead (or a zombie), or this process from an earlier run,
  or untagged; with heartbeats (PostgreSQL) also: no heartbeat for ``grace`` seconds. Trials of
  other hosts are left alone without heartbeats (they may be running). Two workers that find the
  same stale trial race on failing it; the storage lets one win, and only the winner re-enqueues.
- Counting: a trial counts when it finished and was neither re-queued nor ``surplus``. A worker
  asks only while counted + RUNNING < ``n_trials``; right after asking it checks that fewer than
  ``n_trials`` trials are counted or RUNNING with a smaller number, else it tells its trial back as
  FAIL with ``surplus`` true (two workers asked at once on different machines).
- ``launch`` runs worker processes and relays their output lines (``--workers N``);
  ``assign_devices`` places them (round-robin over ``--devices``) and caps the CUDA memory of
  workers that share a GPU (``MEMORY_FRACTION_ENV``, applied by each worker at start).

Re-queueing writes to another process's trial by id and reads the heartbeat's stale ids, which ``Study`` has
no public call for: those steps (and the heartbeat thread) are ``plsearch.search.optuna_private``'s, the one
module that reaches past Optuna's public API (it says why).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from plsearch.locks import pid_alive, pid_started_at  # noqa: F401 - also imported from here
from plsearch.search import optuna_private as op

log = logging.getLogger(__name__)
HOST = socket.gethostname()
MEMORY_FRACTION_ENV = "PLSEARCH_CUDA_MEMORY_FRACTION"
GPU_SHARE = 0.95  # of a GPU's memory for the workers on it; the rest: their CUDA contexts (outside the allocator)


def assign_devices(
    devices: Sequence[str], workers: int, default: str | None = None
) -> list[tuple[str | None, float | None]]:
    """Each worker's device, round-robin over ``devices`` (all on ``default`` without them), and its
    CUDA memory cap: ``GPU_SHARE / k`` of the device when ``k > 1`` workers share it, else None.

    ``cuda`` and ``cuda:0`` are one GPU; ``auto`` (or None) is one device too, capped in case it is a
    GPU (a CPU ignores the cap)."""
    names = [devices[i % len(devices)] if devices else default for i in range(workers)]
    keys = ["auto" if n in (None, "", "auto") else "cuda:0" if n == "cuda" else n for n in names]
    shared = {k: keys.count(k) for k in keys}
    return [
        (n, None if k.startswith(("cpu", "mps")) or shared[k] == 1 else round(GPU_SHARE / shared[k], 4))
        for n, k in zip(names, keys)
    ]


def worker_tag(run_id: str) -> str:
    return f"{HOST}:{os.getpid()}:{run_id}"


def owner_state(worker: str | None, run_id: str, since: datetime | None = None) -> str:
    """``alive``, ``dead``, ``foreign`` (another host: unknown) or ``untagged``.

    ``since``: when the trial started; a process with the worker's pid that started later is
    another process (the pid was reused, e.g. after a reboot), so the worker is dead.
    """
    if not worker:
        return "untagged"
    host, pid, rid = (worker.split(":") + ["", "", ""])[:3]
    if host != HOST:
        return "foreign"
    if not pid.isdigit():
        return "dead"
    if int(pid) == os.getpid():
        return "alive" if rid == run_id else "dead"
    if not pid_alive(int(pid)):
        return "dead"
    started = pid_started_at(int(pid)) if since is not None else None
    return "dead" if started is not None and since is not None and started > since.timestamp() + 2 else "alive"


def counted(t: Any) -> bool:
    """A finished trial that counts towards ``n_trials``: not a FAIL that was re-queued or surplus.

    (A trial that completed while another worker was failing it may carry ``requeued`` from the
    loser of that race; it completed, so it counts.)"""
    if not t.state.is_finished():
        return False
    return t.state.name != "FAIL" or not (t.user_attrs.get("requeued") or t.user_attrs.get("surplus"))


def tally(study: Any) -> tuple[int, list[Any]]:
    """(counted finished trials, RUNNING trials)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return sum(counted(t) for t in trials), [t for t in trials if t.state == TrialState.RUNNING]


def is_surplus(study: Any, number: int, total: int) -> bool:
    """Would trial ``number`` (just asked) make more than ``total``? Smaller numbers win ties."""
    from optuna.trial import TrialState

    ahead = sum(
        1
        for t in study.get_trials(deepcopy=False)
        if counted(t) or (t.state == TrialState.RUNNING and t.number < number)
    )
    return ahead >= total


def params_of(study: Any, trial_id: int) -> dict[str, Any]:
    """A trial's sampled params, or its enqueued ones when it was stopped before sampling."""
    t = op.frozen_trial(study, trial_id)
    return dict(t.params) or op.fixed_params(t)


def requeue(study: Any, trial_id: int, reason: str, attr: str = "requeued") -> bool:
    """Fail a RUNNING trial (``fail_reason``, ``attr`` true) and enqueue its params; False if another
    worker finished or failed it first (then nothing is enqueued)."""
    from optuna.exceptions import UpdateFinishedTrialError

    params = params_of(study, trial_id)
    number = op.frozen_trial(study, trial_id).number
    try:
        op.set_user_attr_by_id(study, trial_id, "fail_reason", reason)
        op.set_user_attr_by_id(study, trial_id, attr, True)
    except UpdateFinishedTrialError:
        return False
    if not op.fail_by_id(study, trial_id):
        return False
    if params:
        study.enqueue_trial(params, user_attrs={"requeued_from": number}, skip_if_exists=False)
    return True


def recover_stale(study: Any, run_id: str, grace: int | None = None) -> list[int]:
    """Fail + re-enqueue RUNNING trials whose worker is gone (see the module doc); returns their numbers.

    Args:
        grace: heartbeat grace period in seconds when the storage records heartbeats, else None.
    """
    from optuna.trial import TrialState

    stale: dict[int, tuple[int, str]] = {}
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        w = t.user_attrs.get("worker")
        state = owner_state(w, run_id, t.datetime_start)
        if state == "dead":
            stale[op.trial_id(t)] = (t.number, f"interrupted (worker {w} is gone)")
        elif state == "untagged" and (grace is None or _older_than(t, 2 * grace)):
            stale[op.trial_id(t)] = (t.number, "interrupted (RUNNING trial without a live worker)")
    if grace is not None:
        for tid in op.stale_trial_ids(study):
            t = op.frozen_trial(study, tid)
            stale.setdefault(
                tid,
                (t.number, f"interrupted (worker {t.user_attrs.get('worker')} sent no heartbeat for {grace}s)"),
            )
    return sorted(number for tid, (number, why) in stale.items() if requeue(study, tid, why))


def _older_than(t: Any, seconds: float) -> bool:
    return t.datetime_start is None or datetime.now() - t.datetime_start > timedelta(seconds=seconds)


def launch(
    commands: Sequence[Sequence[str]],
    env: Mapping[str, str] | Sequence[Mapping[str, str]],
    on_line: Callable[[int, str, bool], None],
    on_tick: Callable[[], None] | None = None,
    tick_seconds: float = 10.0,
    grace_seconds: float = 30.0,
) -> list[int]:
    """Run one process per command, relay each output line as ``on_line(index, line, is_stderr)``.

    Children run in their own session, so a Ctrl-C reaches only this process, which then sends each
    child one SIGINT (they re-queue their trial and stop) and kills those still running after
    ``grace_seconds``; the KeyboardInterrupt is re-raised once all have ended. ``on_tick`` runs about
    every ``tick_seconds`` while children run. Returns the exit codes (negative: killed by a signal).
    """
    envs = [env] * len(commands) if isinstance(env, Mapping) else list(env)
    procs = [
        subprocess.Popen(
            list(cmd),
            env=dict(e),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        for cmd, e in zip(commands, envs)
    ]
    relays = [
        threading.Thread(target=_relay, args=(stream, i, is_err, on_line), daemon=True)
        for i, p in enumerate(procs)
        for stream, is_err in ((p.stdout, False), (p.stderr, True))
    ]
    for r in relays:
        r.start()
    interrupted, last_tick = False, time.monotonic()
    try:
        while any(p.poll() is None for p in procs):  # poll() also reaps a killed child at once
            time.sleep(0.1)
            if on_tick is not None and time.monotonic() - last_tick > tick_seconds:
                last_tick = time.monotonic()
                on_tick()
    except KeyboardInterrupt:
        interrupted = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_seconds
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        for r in relays:
            r.join(timeout=5)
    if interrupted:
        raise KeyboardInterrupt
    return [int(p.returncode) for p in procs]


def _relay(stream: Any, index: int, is_err: bool, on_line: Callable[[int, str, bool], None]) -> None:
    for line in stream:
        on_line(index, line.rstrip("\n"), is_err)
    stream.close()


# ----------------------------------------------------------------------------- default worker count

# Train-step MACs (3 x forward MACs x batch) up to which a CPU trial is "small": its kernels are
# fixed-cost dominated (PL-Net at the default fidelity, 0.5 GMAC/step, runs at 1-5 % of the matmul
# peak on one thread, README Speed), so a second thread has little arithmetic to share while
# separate single-threaded workers run whole trials side by side. 3e9 covers the shipped CPU
# fidelities (32 px batch 8: 0.5 GMAC; dsb2018 64 px batch 8: 2.0 GMAC) and leaves 96 px batch 16
# (8.9 GMAC) to one process with every thread. On a busy shared 2-core machine (load ~25) a
# 2-thread PL-Net step at 32 px could not even be timed: its OpenMP threads spun while descheduled.
SMALL_STEP_MACS = 3e9
MIN_TRIALS_PER_WORKER = 4  # fewer trials do not repay a worker process's start (torch import, data)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def step_macs(values: Mapping[str, Any]) -> float | None:
    """Train-step MACs of PL-Net at a search's fidelity (``values``: dotted paths -> fixed values),
    the yardstick for a trial's size; None where it cannot be estimated."""
    from plsearch.config.presets import preset_config
    from plsearch.config.schema import DataConfig, ModelConfig, TrainConfig
    from plsearch.graph.wiring import estimate

    def get(path: str, default: Any) -> Any:
        return values.get(path, default)

    try:
        width = get("model.base_width", ModelConfig().base_width)
        dims = get("model.spatial_dims", ModelConfig().spatial_dims)
        size = get("data.image_size", DataConfig().image_size)
        batch = get("train.batch_size", TrainConfig().batch_size)
        cfg = preset_config("plnet", base_width=int(width), spatial_dims=int(dims))
        return 3.0 * int(batch) * estimate(cfg, int(size)).macs
    except (ValueError, TypeError, KeyError):
        return None


def default_workers(values: Mapping[str, Any], *, cpu: bool, n_trials: int, cores: int | None = None) -> int:
    """Workers when ``--workers`` is not given: one per core (one thread each) for small CPU trials
    (``step_macs`` at most ``SMALL_STEP_MACS``) with at least ``MIN_TRIALS_PER_WORKER`` trials each,
    else 1 (one process using every core, or one GPU)."""
    macs = step_macs(values) if cpu else None
    if macs is None or macs > SMALL_STEP_MACS:
        return 1
    return max(1, min(cores or usable_cores(), n_trials // MIN_TRIALS_PER_WORKER))


def sqlite_snapshot(out_dir: str | Path, study_name: str, journal: Any) -> bool:
    """After a run with several workers: ``<out>/study.db`` becomes a copy of the journal's study, so
    that ``optuna-dashboard sqlite:///<out>/study.db`` and the ``optuna`` CLI show what the workers did.

    The journal stays the study's storage (a rerun resumes from it). A ``study.db`` that holds other
    studies is left alone (returns False).
    """
    import optuna

    from plsearch.search.storage import StorageSpec, open_storage

    out = Path(out_dir).resolve()
    if getattr(journal, "kind", None) != "journal" or Path(journal.target) != out / "study.journal":
        return False
    db = out / "study.db"
    if db.is_file():
        names = {
            s.study_name
            for s in optuna.get_all_study_summaries(
                open_storage(StorageSpec("sqlite", f"sqlite:///{db}"), create=False), include_best_trial=False
            )
        }
        if names - {study_name}:
            return False
    tmp = out / "study.db.writing"
    tmp.unlink(missing_ok=True)
    optuna.copy_study(
        from_study_name=study_name, from_storage=open_storage(journal, create=False), to_storage=f"sqlite:///{tmp}"
    )
    os.replace(tmp, db)
    return True
