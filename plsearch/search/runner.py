"""The trial loop: create or resume a study, recover interrupted trials, run trials, write outputs.

Resuming is rerunning: the study lives in ``<out>/study.db`` (or ``storage``, see
``plsearch.search.storage``) under a name derived from the space file, is loaded if it exists, and
trials run until ``n_trials`` have finished in total, counted over every worker sharing the study
(``plsearch.search.workers``: re-queued and surplus trials do not count). A trial left RUNNING by
a worker that died is failed (``fail_reason`` "interrupted ...", ``requeued`` true) and its params
are enqueued, so the next trial trains them again; Ctrl-C does the same on the way out. When the
remaining trials are all RUNNING in other workers, a worker waits for them (taking over any whose
worker dies) rather than start more.

Order: the inputs are checked (data readable, images not smaller than the networks' stride) before
the storage is touched, so bad input never changes a study; then the preset references train
(cached in ``references.json``), then trials until ``n_trials`` have finished or ``timeout``
seconds have passed since the start (references included; a running trial is finished, not cut),
then records, Pareto files and plots.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from plsearch.search.storage import StorageError, StorageSpec, claim_lock, open_storage, parse_storage
from plsearch.search.study import (
    SPACE_ATTR,
    SearchError,
    check_inputs,
    make_sampler,
    make_storage,
    measurement,
    open_study,
)
from plsearch.search.workers import owner_state, recover_stale, requeue, tally, worker_tag

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

log = logging.getLogger(__name__)
__all__ = [
    "SearchError",
    "SearchResult",
    "Search",
    "prepare",
    "run_trials",
    "finish",
    "run_search",
    "open_study",
    "make_storage",
    "make_sampler",
    "check_inputs",
    "SPACE_ATTR",
]


@dataclass
class SearchResult:
    study: Any
    out_dir: Path
    records: list[dict]
    pareto: list[dict]
    references: dict[str, dict]
    ran: int
    plots: dict[str, str]


@dataclass
class Search:
    """A search opened by ``prepare``: what the trial loop of one worker needs."""

    space: "SearchSpace"
    extra: dict[str, Any]
    out: Path
    spec: StorageSpec
    study: Any
    total: int
    limit: float | None
    t_start: float
    run_id: str
    heartbeat: tuple[int, int] | None  # (interval, grace) seconds when the storage records heartbeats
    note: Callable[[str], None]
    store: Any = None  # the artifact store of kept weights (plsearch.infer.artifacts.open_store)
    keep_top: int | None = None  # weights kept: Pareto set + top k (None: artifacts.DEFAULT_KEEP_TOP)

    @property
    def worker(self) -> str:
        return worker_tag(self.run_id)


def prepare(
    space: "SearchSpace",
    *,
    out_dir: str | Path,
    storage: str | StorageSpec | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
    workers: int = 1,
    heartbeat: int | None = 60,
    worker_index: int | None = None,
    on_event: Callable[[str], None] | None = None,
    artifacts: str | Path | None = None,
    keep_top: int | None = None,
) -> Search:
    """Check the inputs, open (or create) the study and recover its stale trials.

    Args:
        workers: how many processes will share the study (> 1: a shared storage, TPE's constant liar).
        heartbeat: seconds between heartbeats on database storages (grace: twice that); None: off.
        worker_index: set in the processes ``--workers`` starts: their samplers get distinct seeds.
        artifacts: the folder that keeps trained weights (``--artifacts``; default: the one the study
            records, else ``<out>/artifacts``); ``keep_top``: weights kept beyond the Pareto set.
    """
    t_start = time.monotonic()
    note = on_event or (lambda msg: log.info("%s", msg))
    out = Path(out_dir)
    space = replace(space, seed=seed) if seed is not None else space
    extra = dict(extra or {})
    if not any(p == "train.seed" for p, _ in space.fixed) and "train.seed" not in extra:
        extra["train.seed"] = space.seed
    spec = storage if isinstance(storage, StorageSpec) else parse_storage(storage, out, workers)
    check_inputs(space, extra)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.path is not None and spec.path.parent == out.resolve():
        out.mkdir(parents=True, exist_ok=True)  # the study file lives in --out (else: create --out once it opened)
    name = study_name or space.name
    if spec.kind == "journal" and workers > 1 and Path(spec.target) == (out / "study.journal").resolve():
        from plsearch.search.storage import copy_sqlite_into_journal

        copied = copy_sqlite_into_journal(out, name, spec)
        if copied:
            note(
                f"copied study {name!r} ({copied} trials) from study.db into {spec.shown} for several workers; "
                "study.db is left as it was"
            )
    beat = (int(heartbeat), 2 * int(heartbeat)) if spec.heartbeats and heartbeat else None
    run_id = uuid.uuid4().hex[:8]
    parallel = spec.shared and (workers > 1 or worker_index is not None or spec.kind == "rdb")
    offset = int(run_id, 16) % 100_000 if parallel else 0  # workers started together sample differently
    study = open_study(
        space, open_storage(spec, heartbeat=beat), name, space.seed + offset, parallel, measurement(space, extra)
    )
    from plsearch.infer.artifacts import ArtifactError, open_store

    try:
        store = open_store(study, out, artifacts)  # before any training: a conflicting --artifacts stops here
    except ArtifactError as e:
        raise SearchError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    s = Search(
        space,
        extra,
        out,
        spec,
        study,
        n_trials if n_trials is not None else space.n_trials,
        timeout if timeout is not None else space.timeout,
        t_start,
        run_id,
        beat,
        note,
        store,
        keep_top,
    )
    with claim_lock(spec):
        stale = recover_stale(study, run_id, beat[1] if beat else None)
    if stale:
        note(f"re-queued interrupted trial(s) {stale}: they will run again")
    done, _ = tally(study)
    if done >= s.total:
        note(f"study {name!r} already has {done} finished trials (n_trials {s.total}); raise --n-trials to add more")
    elif done:
        note(f"resuming study {name!r}: {done} of {s.total} trials finished")
    return s


def _next_trial(s: Search) -> tuple[Any, list[Any], bool]:
    """(a trial tagged with this worker or None, the RUNNING trials, all done?)."""
    with claim_lock(s.spec):
        stale = recover_stale(s.study, s.run_id, s.heartbeat[1] if s.heartbeat else None)
        if stale:
            s.note(f"re-queued interrupted trial(s) {stale}: they will run again")
        done, running = tally(s.study)
        if done >= s.total or done + len(running) >= s.total:
            return None, running, done >= s.total
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")  # we run the heartbeat ourselves
            trial = s.study.ask()
        trial.set_user_attr("worker", s.worker)
    return trial, running, False


def run_trials(s: Search, on_trial: Callable[[dict], None] | None = None, write: bool = True) -> int:
    """Run trials until ``n_trials`` have finished over all workers (or the time limit); returns how many ran here.

    ``write``: rewrite trials.jsonl and the Pareto files after each trial.
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    from plsearch.config.gate import DeviceError
    from plsearch.data.dataset import DataError
    from plsearch.search import optuna_private as op
    from plsearch.search.objective import Objective
    from plsearch.search.provenance import environment
    from plsearch.search.records import trial_record, write_outputs
    from plsearch.search.workers import is_surplus

    objective, env = Objective(s.space, s.extra), environment()
    from plsearch.infer.artifacts import open_store

    # each trained trial's best weights, in the study's artifact store (OUT/artifacts unless --artifacts)
    objective.artifacts = s.store if s.store is not None else open_store(s.study, s.out)
    objective.keep_top = s.keep_top
    ran, waiting = 0, False
    poll = 1.0 if s.spec.kind == "rdb" else 0.5
    while s.limit is None or time.monotonic() - s.t_start < s.limit:  # the time limit counts references
        trial, running, finished = _next_trial(s)
        if finished:
            break
        if trial is None:  # the rest is running elsewhere: wait, to take over a trial whose worker dies
            watched = [
                t for t in running if s.heartbeat or owner_state(t.user_attrs.get("worker"), s.run_id) != "foreign"
            ]
            if not watched:
                hosts = sorted({str(t.user_attrs.get("worker", "?")).split(":")[0] for t in running})
                s.note(
                    f"trial(s) {[t.number for t in running]} are RUNNING on {', '.join(hosts)} and cannot be "
                    "watched without heartbeats; rerun when they have finished"
                )
                break
            if not waiting:
                s.note(f"waiting for trial(s) {[t.number for t in running]} of other workers (n_trials {s.total})")
            waiting = True
            time.sleep(poll)
            continue
        waiting = False
        if is_surplus(s.study, trial.number, s.total):  # another machine asked at the same moment
            requeue(
                s.study,
                op.trial_id(trial),
                f"surplus: {s.total} trials were already finished or running",
                attr="surplus",
            )
            continue
        for k, v in (("versions", env["versions"]), ("git_rev", env["git_rev"])):
            trial.set_user_attr(k, v)
        try:
            with op.Heartbeat(s.study, trial, s.heartbeat[0] if s.heartbeat else None):
                outcome = objective(trial)
            if outcome is None or outcome.state == "fail":
                s.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif outcome.state == "pruned":
                s.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                s.study.tell(trial, outcome.values)
        except UpdateFinishedTrialError:
            s.note(
                f"trial {trial.number} was failed by another worker (no heartbeat in time); its parameters "
                "were re-queued"
            )
            continue
        except KeyboardInterrupt:
            requeue(s.study, op.trial_id(trial), "interrupted (KeyboardInterrupt)")
            if write:
                write_outputs(s.study, s.out)
            raise
        except (DataError, DeviceError) as e:  # the user's setup, not the trial: stop here
            requeue(s.study, op.trial_id(trial), f"setup error: {e}")
            raise
        except StorageError:  # the database is gone: the trial stays RUNNING, re-queued as stale by the next run
            raise
        except Exception as e:  # a bug or an unexpected problem: record it, keep the study going
            log.exception("trial %d failed", trial.number)
            reason = f"error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            try:
                trial.set_user_attr("fail_reason", reason)
                s.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue
        ran += 1
        if objective.artifacts is not None:  # the finished trial may push earlier ones off the front
            from plsearch.infer.artifacts import bound

            bound(s.study, objective.artifacts, s.keep_top)
        frozen = op.frozen_trial(s.study, op.trial_id(trial))
        if write:
            write_outputs(s.study, s.out)
        if on_trial:
            on_trial(trial_record(frozen, s.space.metric_names))
    done, _ = tally(s.study)
    if s.limit is not None and done < s.total and time.monotonic() - s.t_start >= s.limit:
        s.note(f"timeout of {s.limit:g}s reached after {ran} trial(s); rerun to continue")
    return ran


Draw = Callable[[Any, Path, "Mapping[str, dict] | None"], "dict[str, str]"]


def finish(
    s: Search, references: Mapping[str, dict] | None = None, draw: Draw | None = None, ran: int = 0
) -> SearchResult:
    """Write records and Pareto files from the storage, then ``draw(study, out, references)`` (e.g.
    ``plsearch.report.study.draw_plots``, a layer above this one) if given; returns the ``SearchResult``."""
    from plsearch.search.records import write_outputs

    records, rows = write_outputs(s.study, s.out)
    plot_paths: dict[str, str] = {}
    if draw is not None:
        plot_paths = draw(s.study, s.out, dict(references or {}) or None)
    return SearchResult(s.study, s.out, records, rows, dict(references or {}), ran, plot_paths)


def run_search(
    space: "SearchSpace",
    *,
    out_dir: str | Path,
    storage: str | StorageSpec | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
    references: bool = True,
    draw: Draw | None = None,
    heartbeat: int | None = 60,
    on_trial: Callable[[dict], None] | None = None,
    on_reference: Callable[[str, dict, bool], None] | None = None,
    on_event: Callable[[str], None] | None = None,
    artifacts: str | Path | None = None,
    keep_top: int | None = None,
    on_stage: Callable[[str, int, int], None] | None = None,
) -> SearchResult:
    """Run (or resume) the search of ``space`` in this process until ``n_trials`` trials have finished in total.

    Other processes may share the study (same ``storage`` and study name); ``python -m plsearch.search
    --workers N`` starts them.

    Args:
        extra: config overrides applied to every trial, e.g. ``{"data.root": DIR, "train.device": "cuda"}``.
        draw: ``draw(study, out_dir, references) -> {name: path}`` at the end, e.g.
            ``plsearch.report.study.draw_plots`` (the search layer does not import the report layer).
        on_trial: called with each finished trial's record; ``on_event`` with one-line notes;
            ``on_stage(stage, done, total)`` as the references (``"references"``, 0, how many) and the
            trials (``"trials"``, finished so far, ``n_trials``) start, e.g. for a progress display.
        artifacts, keep_top: where trained weights are kept and how many beyond the Pareto set (``prepare``).

    Returns:
        ``SearchResult`` with the study, all records, the Pareto rows, references and plot paths.
    """
    s = prepare(
        space,
        out_dir=out_dir,
        storage=storage,
        study_name=study_name,
        n_trials=n_trials,
        timeout=timeout,
        seed=seed,
        extra=extra,
        heartbeat=heartbeat,
        on_event=on_event,
        artifacts=artifacts,
        keep_top=keep_top,
    )
    refs: dict[str, dict] = {}
    if references and s.space.references:  # first: cached after one run, and the user sees them early
        from plsearch.search.references import train_references

        if on_stage is not None:
            on_stage("references", 0, len(s.space.references))
        refs = train_references(s.space, s.out, s.extra, on_reference, keep=(s.study, s.store))
    if on_stage is not None:
        on_stage("trials", tally(s.study)[0], s.total)
    ran = run_trials(s, on_trial)
    return finish(s, refs, draw, ran)
