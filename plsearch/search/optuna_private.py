"""Every use of Optuna beyond its public API, in one place, as small named functions.

Why any at all: re-queueing another process's RUNNING trial writes to that trial by id (its ``fail_reason`` and
``requeued`` attrs, then FAIL, atomically against a worker finishing it) and reads the heartbeat's stale ids;
``Study`` has no public call for either (``Study.tell`` cannot set a trial's attrs, and
``optuna.storages.fail_stale_trials`` neither says which trials it failed nor re-enqueues their params). A trial's
enqueued params, the study's recorded artifact store and a trial's artifacts need the storage handle or
``system_attrs`` too, and the journal file's lock is Optuna's lock protocol with a lock of our own. A database
server that restarts under a search is ridden out by ``retrying_rdb_storage``: an ``RDBStorage`` whose storage
calls (its public methods and the heartbeat's ``_get_stale_trial_ids``) retry while the connection is lost.

What each function relies on (a private name, or a public storage method reached through the private handle) is
pinned by ``tests/test_optuna_adapter.py`` against the installed Optuna, so an upgrade that moves one fails there
first; ``tests/test_optuna_adapter.py`` also holds that no other plsearch module touches these names. This
module imports no other plsearch module (the infer layer's artifacts reach it from below the search package).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "Heartbeat",
    "artifact_file",
    "constraint_values",
    "fail_by_id",
    "fixed_params",
    "frozen_trial",
    "has_storage",
    "journal_storage",
    "lost_connection",
    "retrying_rdb_storage",
    "set_study_system_attr",
    "set_user_attr_by_id",
    "stale_trial_ids",
    "storage_of",
    "store_folder",
    "study_id",
    "study_system_attrs",
    "trial_id",
]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- handles
def storage_of(study: Any) -> Any:
    """The storage a ``Study`` reads and writes (``study._storage``)."""
    return study._storage


def has_storage(study: Any) -> bool:
    """Whether ``study`` is backed by an Optuna storage (a real ``Study``, not a stand-in)."""
    return hasattr(study, "_storage")


def study_id(study: Any) -> int:
    """The storage's id of ``study`` (``study._study_id``)."""
    return int(study._study_id)


def trial_id(trial: Any) -> int:
    """The storage's id of a ``Trial`` or ``FrozenTrial`` (``_trial_id``; unlike ``number``, unique across studies)."""
    return int(trial._trial_id)


# ----------------------------------------------------------------------------- reading trials
def frozen_trial(study: Any, trial_id: int) -> Any:
    """The trial with storage id ``trial_id`` as it is stored now (``storage.get_trial``): one trial read by id,
    cheaper than ``study.get_trials`` and fresh for a trial this process is running."""
    return study._storage.get_trial(trial_id)


def fixed_params(frozen: Any) -> dict[str, Any]:
    """The params a trial was enqueued with (``enqueue_trial``), before or without sampling: Optuna keeps them in
    the system attr ``fixed_params``."""
    return dict(frozen.system_attrs.get("fixed_params") or {})


def constraint_values(frozen: Any) -> list[float]:
    """A trial's constraint values (<= 0: satisfied): ``FrozenTrial.constraints`` (a dict in Optuna 5), else the
    system attr ``constraints`` where older Optuna kept them."""
    cons = getattr(frozen, "constraints", None)
    if isinstance(cons, dict):
        return [float(v) for v in cons.values()]
    return [float(v) for v in frozen.system_attrs.get("constraints") or ()]


# ----------------------------------------------------------------------------- writing trials by id
def set_user_attr_by_id(study: Any, trial_id: int, key: str, value: Any) -> None:
    """Set a user attr of any trial of ``study`` by storage id (another process's too).

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished.
    """
    study._storage.set_trial_user_attr(trial_id, key, value)


def fail_by_id(study: Any, trial_id: int) -> bool:
    """Move a trial to FAIL by storage id; False when it had already finished (another worker won the race).

    The storage makes the check and the write one step (``set_trial_state_values``), so of two workers failing
    the same trial exactly one gets True."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        return study._storage.set_trial_state_values(trial_id, TrialState.FAIL) is not False
    except UpdateFinishedTrialError:
        return False


# ----------------------------------------------------------------------------- heartbeats
def stale_trial_ids(study: Any) -> list[int]:
    """Ids of RUNNING trials whose heartbeat is older than the storage's grace period (``RDBStorage`` created with
    ``heartbeat_interval``); Optuna's private helper ``_get_stale_trial_ids``."""
    return list(study._storage._get_stale_trial_ids(study._study_id))


class Heartbeat:
    """Context manager: records a heartbeat for ``trial`` every ``interval`` seconds (RDB storages with
    heartbeats; None or 0: nothing) from a daemon thread, and once at once on entry."""

    def __init__(self, study: Any, trial: Any, interval: int | None) -> None:
        self.storage, self.trial_id, self.interval = study._storage, trial_id(trial), interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as e:  # a dropped connection: try again next time
                log.warning("heartbeat of trial id %d failed: %s", self.trial_id, type(e).__name__)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "Heartbeat":
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)  # at once: a trial never lacks one
            self._thread = threading.Thread(target=self._run, name="plsearch-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# ----------------------------------------------------------------------------- a lost database connection
# The storage calls a search makes (each one session and one commit in RDBStorage, so a retried call either
# took effect before or takes effect now), public and the private ones Optuna's cache in front of an RDBStorage
# calls on it (``_get_trials``, ``_create_new_trial``, ``_set_trial_param``, ``_get_best_trial_id``) and the
# heartbeat's stale ids.
RETRIED_CALLS = (
    "_get_trials",
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "get_best_trial",
    "record_heartbeat",
    "_get_stale_trial_ids",
)


def lost_connection(e: BaseException) -> bool:
    """Is ``e`` (or what caused it: Optuna wraps a failed commit in ``StorageInternalError``) a connection to the
    database that was lost or refused (server restarting, network), rather than a bad request?"""
    import sqlalchemy.exc as sx

    seen: BaseException | None = e
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, (sx.OperationalError, sx.InterfaceError)) or (
            isinstance(seen, sx.DBAPIError) and seen.connection_invalidated
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retried(base: type, name: str) -> Callable[..., Any]:
    @functools.wraps(getattr(base, name))
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        deadline, wait = None, 0.5
        while True:
            try:
                return getattr(base, name)(self, *args, **kwargs)
            except Exception as e:
                if not lost_connection(e):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.plsearch_patience
                    log.warning("lost the connection to the database (%s); reconnecting", type(e).__name__)
                if now >= deadline:
                    raise self.plsearch_give_up(e) from None
                time.sleep(min(wait, deadline - now))
                wait = min(2 * wait, 5.0)

    return call


@functools.cache
def _retrying_class() -> type:
    import optuna

    base = optuna.storages.RDBStorage
    namespace: dict[str, Any] = {name: _retried(base, name) for name in RETRIED_CALLS}
    namespace.update(plsearch_patience=60.0, plsearch_give_up=staticmethod(lambda e: e))
    return type("RetryingRDBStorage", (base,), namespace)


def retrying_rdb_storage(
    url: str, *, patience: float, give_up: Callable[[BaseException], Exception], **kwargs: Any
) -> Any:
    """An ``RDBStorage`` (``kwargs`` as Optuna's) whose storage calls retry for up to ``patience`` seconds while
    the database connection is lost (``lost_connection``), then raise ``give_up(error)``.

    The engine should ping pooled connections (``pool_pre_ping``) so that one a restarted server dropped is
    replaced before use instead of failing a call."""
    storage = _retrying_class()(url, **kwargs)
    storage.plsearch_patience, storage.plsearch_give_up = float(patience), give_up
    return storage


# ----------------------------------------------------------------------------- study system attrs
def study_system_attrs(study: Any) -> dict[str, Any]:
    """The study's system attrs (``storage.get_study_system_attrs``; ``Study.system_attrs`` is deprecated)."""
    return dict(study._storage.get_study_system_attrs(study._study_id))


def set_study_system_attr(study: Any, key: str, value: Any) -> None:
    """Set a system attr of the study (``storage.set_study_system_attr``): plsearch's own bookkeeping that
    optuna-dashboard does not list among the user's attrs."""
    study._storage.set_study_system_attr(study._study_id, key, value)


# ----------------------------------------------------------------------------- the artifact store
def store_folder(store: Any) -> Path | None:
    """The folder a ``FileSystemArtifactStore`` writes to (its ``_base_path``), resolved; None for other stores."""
    base = getattr(store, "_base_path", None)
    return Path(base).resolve() if base is not None else None


def artifact_file(store: Any, artifact_id: str) -> Path | None:
    """The file a ``FileSystemArtifactStore`` keeps ``artifact_id`` in (``<folder>/<artifact_id>``: read without
    a copy, e.g. by ``plsearch.load``), or None (another kind of store, or no such file)."""
    base = store_folder(store)
    path = base / artifact_id if base is not None else None
    return path if path is not None and path.is_file() else None


# ----------------------------------------------------------------------------- the journal file
def journal_storage(path: str | os.PathLike[str]) -> Any:
    """A ``JournalStorage`` on the file ``path`` whose lock the kernel releases when its holder dies.

    Optuna's default lock (a symlink) stalls every other worker for 30 s after a ``kill -9`` caught mid-write.
    ``JournalFileBackend`` takes any object with ``acquire()`` and ``release()`` as its lock (its base class
    lives in a private module); off POSIX, Optuna's default.

    Raises:
        OSError, ValueError: the file cannot be opened as a journal.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = str(path)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=_flock_lock(path)))


def _flock_lock(path: str) -> Any:
    """A lock on ``<path>.flock`` (``fcntl.flock``: released by the kernel when its holder dies), or None off POSIX."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return None

    class FlockLock:  # Optuna's JournalFileBackend calls acquire() and release()
        def __init__(self) -> None:
            self._local = threading.local()

        def acquire(self) -> bool:
            fd = os.open(f"{path}.flock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.fd = fd
            return True

        def release(self) -> None:
            fd, self._local.fd = getattr(self._local, "fd", None), None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    return FlockLock()
