"""The trial loop: create or resume a study, recover interrupted trials, run trials, write outputs.

Resuming is rerunning: the study lives in ``<out>/study.db`` (or ``storage``) under a name derived
from the space file, is loaded if it exists, and only ``n_trials - finished`` trials run. A trial
left RUNNING by a killed worker is failed (``fail_reason``: interrupted, ``requeued``: true) and its
params are enqueued, so the next trial trains them again; Ctrl-C does the same on the way out.
Requeued trials do not count as finished. A RUNNING trial is stale when its worker
(``host:pid:run``, user attr ``worker``) is on this host and dead, is this process from an earlier
run, or is unknown; trials of other hosts are left alone (they may still be running).

Order: the preset references train first (cached in ``references.json``), then trials until
``n_trials`` have finished or ``timeout`` seconds have passed since the start (references included;
a running trial is finished, not cut), then records, Pareto files and plots.

Storage: an SQLite file for one process; a journal file (``*.log``/``*.journal``) for several
processes on one machine; PostgreSQL (``postgresql://...``) for several machines.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

log = logging.getLogger(__name__)
SPACE_ATTR = "plsearch:space"


class SearchError(ValueError):
    """The search cannot start (storage holds an incompatible study, bad storage URL, ...)."""


@dataclass
class SearchResult:
    study: Any
    out_dir: Path
    records: list[dict]
    pareto: list[dict]
    references: dict[str, dict]
    ran: int
    plots: dict[str, str]


def make_storage(spec: str | None, out_dir: Path) -> Any:
    """``None`` -> ``sqlite:///<out>/study.db``; ``*.log``/``*.journal`` -> JournalStorage; else an RDB URL."""
    import optuna

    if not spec:
        return f"sqlite:///{(out_dir / 'study.db').resolve()}"
    if spec.endswith((".log", ".journal")) and "://" not in spec:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(spec))
    if "://" not in spec:
        raise SearchError(f"storage {spec!r} is not a database URL or journal file; use sqlite:///PATH.db, "
                          "postgresql://..., or a PATH.log journal file")
    return spec


def make_sampler(space: "SearchSpace", seed: int) -> Any:
    from plsearch.search.space import sampler_class

    return sampler_class(space.sampler)(seed=seed, **dict(space.sampler_options))


def _worker_alive(worker: str | None, run_id: str) -> bool:
    """Is the worker that owns a RUNNING trial still running? Unknown hosts count as alive."""
    if not worker:
        return False
    host, pid, rid = (worker.split(":") + ["", "", ""])[:3]
    if host != socket.gethostname():
        return True
    if int(pid) == os.getpid():
        return rid == run_id
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def requeue(study: Any, trial_id: int, number: int, params: Mapping[str, Any], reason: str) -> None:
    """Fail a RUNNING trial with ``reason`` and enqueue its params so that they run again."""
    from optuna.trial import TrialState

    storage = study._storage
    storage.set_trial_user_attr(trial_id, "fail_reason", reason)
    storage.set_trial_user_attr(trial_id, "requeued", True)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)
    if params:
        study.enqueue_trial(dict(params), user_attrs={"requeued_from": number}, skip_if_exists=False)


def _params_of(study: Any, trial_id: int) -> dict[str, Any]:
    """A trial's sampled params, or its enqueued ones when it was stopped before sampling."""
    t = study._storage.get_trial(trial_id)
    return dict(t.params) or dict(t.system_attrs.get("fixed_params") or {})


def recover_stale(study: Any, run_id: str = "") -> list[int]:
    """Fail + re-enqueue RUNNING trials whose worker is gone; returns their numbers."""
    from optuna.trial import TrialState

    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _worker_alive(t.user_attrs.get("worker"), run_id):
            continue
        w = t.user_attrs.get("worker")
        requeue(study, t._trial_id, t.number, _params_of(study, t._trial_id),
                f"interrupted (worker {w} is gone)" if w else "interrupted (RUNNING trial without a live worker)")
        stale.append(t.number)
    return stale


def count_finished(study: Any) -> int:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get("requeued"))


def open_study(space: "SearchSpace", storage: Any, study_name: str, seed: int) -> Any:
    """Create or load the study; refuse one whose objectives differ from the space's."""
    import optuna

    from plsearch.search.pruning import study_pruner

    n_existing = 0
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage)
        n_existing = len(existing.get_trials(deepcopy=False))
        if [d.name.lower() for d in existing.directions] != space.directions or \
                (existing.metric_names or space.metric_names) != space.metric_names:
            raise SearchError(
                f"study {study_name!r} in this storage optimizes {existing.metric_names} "
                f"{[d.name.lower() for d in existing.directions]}, the space asks for {space.metric_names} "
                f"{space.directions}; pass another --study-name or --out")
    except KeyError:
        pass
    # A resumed study gets a fresh sampler stream (seed + trials so far): the same seed would replay
    # the random start-up samples already tried.
    study = optuna.create_study(study_name=study_name, storage=storage, directions=space.directions,
                                sampler=make_sampler(space, seed + n_existing), pruner=study_pruner(space),
                                load_if_exists=True)
    if n_existing == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is "experimental" since Optuna 3.2
            study.set_metric_names(space.metric_names)
        study.set_user_attr(SPACE_ATTR, dict(space.raw))
    return study


def run_search(space: "SearchSpace", *, out_dir: str | Path, storage: str | None = None,
               study_name: str | None = None, n_trials: int | None = None, timeout: float | None = None,
               seed: int | None = None, extra: Mapping[str, Any] | None = None, references: bool = True,
               plots: bool = True, on_trial: Callable[[dict], None] | None = None,
               on_reference: Callable[[str, dict, bool], None] | None = None,
               on_event: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume) the search of ``space`` until ``n_trials`` trials have finished in total.

    Args:
        extra: config overrides applied to every trial, e.g. ``{"data.root": DIR, "train.device": "cuda"}``.
        on_trial: called with each finished trial's record; ``on_event`` with one-line notes.

    Returns:
        ``SearchResult`` with the study, all records, the Pareto rows, references and plot paths.
    """
    import optuna

    from plsearch.data import DataError
    from plsearch.search.objective import Objective
    from plsearch.search.records import environment, trial_record, write_outputs
    from plsearch.train import DeviceError

    t_start = time.monotonic()
    note = on_event or (lambda msg: log.info("%s", msg))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if seed is not None:
        space = replace(space, seed=seed)
    extra = dict(extra or {})
    if not any(p == "train.seed" for p, _ in space.fixed) and "train.seed" not in extra:
        extra["train.seed"] = space.seed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_id = uuid.uuid4().hex[:8]
    worker = f"{socket.gethostname()}:{os.getpid()}:{run_id}"
    name = study_name or space.name
    study = open_study(space, make_storage(storage, out), name, space.seed)
    stale = recover_stale(study, run_id)
    if stale:
        note(f"re-queued interrupted trial(s) {stale}: they will run again")
    total = n_trials if n_trials is not None else space.n_trials
    limit = timeout if timeout is not None else space.timeout
    objective = Objective(space, extra)
    env = environment()
    done = count_finished(study)
    if done >= total:
        note(f"study {name!r} already has {done} finished trials (n_trials {total}); raise --n-trials to add more")
    elif done:
        note(f"resuming study {name!r}: {done} of {total} trials finished")
    refs: dict[str, dict] = {}
    if references and space.references:  # first: cached after one run, and the user sees them early
        from plsearch.search.references import train_references

        refs = train_references(space, out, extra, on_reference)
    ran = 0
    while done < total and (limit is None or time.monotonic() - t_start < limit):  # timeout counts references
        trial = study.ask()
        for k, v in (("worker", worker), ("versions", env["versions"]), ("git_rev", env["git_rev"])):
            trial.set_user_attr(k, v)
        try:
            outcome = objective(trial)
        except KeyboardInterrupt:
            requeue(study, trial._trial_id, trial.number, _params_of(study, trial._trial_id),
                    "interrupted (KeyboardInterrupt)")
            write_outputs(study, out)
            raise
        except Exception as e:  # a bug or an unexpected problem: record it, keep the study going
            if isinstance(e, (DataError, DeviceError)):  # the user's setup, not the trial: stop here
                requeue(study, trial._trial_id, trial.number, _params_of(study, trial._trial_id), f"setup error: {e}")
                raise
            log.exception("trial %d failed", trial.number)
            reason = f"error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            trial.set_user_attr("fail_reason", reason)
            outcome = None
        if outcome is None or outcome.state == "fail":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif outcome.state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, outcome.values)
        ran += 1
        done = count_finished(study)
        frozen = study._storage.get_trial(trial._trial_id)
        write_outputs(study, out)
        if on_trial:
            on_trial(trial_record(frozen, space.metric_names))
    if limit is not None and done < total:
        note(f"timeout of {limit:g}s reached after {ran} trial(s); rerun to continue")
    records, rows = write_outputs(study, out)
    plot_paths: dict[str, str] = {}
    if plots:
        from plsearch.report import draw_plots

        plot_paths = draw_plots(study, out, references=refs or None)
    return SearchResult(study, out, records, rows, refs, ran, plot_paths)
