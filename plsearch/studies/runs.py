"""Run a list of fixed configs x seeds resumably: the engine under confirm, the fidelity check and the ablation.

A *job* is a resolved ``RunConfig`` (its ``train.seed`` is the seed) under a unique ``key``. Jobs live
in an Optuna study (why Optuna and not a JSON file: the search's storages, worker tags, stale-trial
recovery and PostgreSQL heartbeats then work here unchanged, and the runs open in optuna-dashboard):

- the study's user attr ``job:<key>`` holds the job (config, group, info); each run of it is one
  trial enqueued with the fixed param ``{"job": key}``, so a re-queued trial needs nothing else;
- a worker pops a WAITING trial (``study.ask``), trains, evaluates the best epoch's weights on the
  **test** split, and tells the trial COMPLETE (value: best val Dice) with the result in user attr
  ``result``; a run that cannot train (NaN loss) is a FAIL with ``fail_reason`` and counts as done;
- after a kill, a RUNNING trial whose worker is gone is failed and re-queued (``workers.recover_stale``),
  and its run folder's ``last.pt`` lets ``fit`` continue where it stopped; finished jobs are never redone.

Storage: ``<out>/runs.journal`` (any number of local workers) unless a ``--storage`` URL is given,
where the study is ``<name>`` beside the search's. Run folders: ``<out>/runs/<key>/`` (``log.jsonl``,
``test_curve.jsonl``, ``curves.png``; ``best.pt`` and ``last.pt`` while it runs). A finished run's best
weights become an Optuna artifact of its trial in ``<out>/artifacts/``, or the folder ``run_jobs(artifacts=)``
(``--artifacts``) names, recorded in the runs study (``plsearch.infer.artifacts``); its row's ``checkpoint`` is
that file. ``python -m plsearch.runs`` is the worker process.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from plsearch.config.schema import RunConfig

log = logging.getLogger(__name__)
JOB_ATTR = "job:"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*(/[A-Za-z0-9][A-Za-z0-9_.=+-]*)*$")


class RunsError(ValueError):
    """A job list or runs study cannot be used; the message names the fix."""


@dataclass(frozen=True)
class Job:
    """One training run. ``key``: unique, path-like (``trial_12/seed_1``); ``group``: the config it
    repeats (its seeds and folds share it); ``info``: JSON data carried to the result (source, val Dice).
    ``test_curve``: also evaluate the test split after every epoch (for curves at equal compute).
    ``test_epochs``: evaluate the best-so-far weights (what a run stopped there would keep) on the test
    split after these epochs and the last (the truth table's points)."""

    key: str
    config: RunConfig
    group: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)
    test_curve: bool = False
    test_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not _KEY.match(self.key) or ".." in self.key:
            raise RunsError(f"job key {self.key!r} must be letters, digits, _.=+- and '/' between parts; rename it")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "config": self.config.to_dict(),
            "group": self.group or self.key,
            "info": dict(self.info),
            "test_curve": self.test_curve,
            **({"test_epochs": list(self.test_epochs)} if self.test_epochs else {}),
        }


@dataclass
class Runs:
    """An opened runs study (see ``open_runs``)."""

    study: Any
    spec: Any
    out: Path
    run_id: str
    heartbeat: tuple[int, int] | None

    @property
    def worker(self) -> str:
        from plsearch.search.workers import worker_tag

        return worker_tag(self.run_id)


def open_runs(out_dir: str | Path, name: str, *, storage: str | None = None, heartbeat: int | None = 60) -> Runs:
    """Open (or create) runs study ``name``: in ``storage`` if given, else ``<out>/runs.journal``."""
    import optuna

    from plsearch.search.storage import StorageSpec, open_storage, parse_storage

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = parse_storage(storage, out, 2) if storage else StorageSpec("journal", str(out / "runs.journal"))
    beat = (int(heartbeat), 2 * int(heartbeat)) if spec.heartbeats and heartbeat else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=open_storage(spec, heartbeat=beat), direction="maximize", load_if_exists=True
    )
    return Runs(study, spec, out, uuid.uuid4().hex[:8], beat)


def _job_of(t: Any) -> str | None:
    from plsearch.search.optuna_private import fixed_params

    return fixed_params(t).get("job") or t.user_attrs.get("job")


def _same_config(stored: Mapping[str, Any], config: RunConfig) -> bool:
    """A stored job's config equals ``config``, fields added to the config since it was stored taking their
    defaults (a resumed benchmark is not refused because plsearch gained a setting)."""
    if stored == config.to_dict():
        return True
    try:
        return RunConfig.from_dict(stored).to_dict() == config.to_dict()
    except ValueError:  # a field that no longer exists: a different config
        return False


def submit(runs: Runs, jobs: Sequence[Job]) -> list[str]:
    """Enqueue the jobs that are neither finished nor waiting nor running; returns their keys.

    A key already stored with another config is refused (``RunsError``): results would mix.
    """
    from plsearch.search.storage import claim_lock
    from plsearch.search.workers import counted, recover_stale

    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise RunsError("two jobs share a key; give every config x seed its own key")
    added = []
    with claim_lock(runs.spec):
        recover_stale(runs.study, runs.run_id, runs.heartbeat[1] if runs.heartbeat else None)
        attrs = runs.study.user_attrs
        live = {_job_of(t) for t in runs.study.get_trials(deepcopy=False) if counted(t) or not t.state.is_finished()}
        for job in jobs:
            stored = attrs.get(JOB_ATTR + job.key)
            if stored is not None and not _same_config(stored["config"], job.config):
                raise RunsError(
                    f"job {job.key!r} is stored in {runs.spec.shown} with another config; use another "
                    "--out (or study) for a changed fidelity"
                )
            if stored is None:
                runs.study.set_user_attr(JOB_ATTR + job.key, job.to_dict())
            if job.key not in live:
                runs.study.enqueue_trial({"job": job.key}, skip_if_exists=False)
                added.append(job.key)
    return added


def _next(runs: Runs) -> tuple[Any, bool]:
    """(a trial of a waiting job tagged with this worker, or None; is anything still running?)."""
    from optuna.trial import TrialState

    from plsearch.search.storage import claim_lock
    from plsearch.search.workers import recover_stale

    with claim_lock(runs.spec):
        recover_stale(runs.study, runs.run_id, runs.heartbeat[1] if runs.heartbeat else None)
        trials = runs.study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        if not any(t.state == TrialState.WAITING for t in trials):
            return None, bool(trials)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = runs.study.ask()
        trial.set_user_attr("worker", runs.worker)
    return trial, True


def work(
    runs: Runs,
    *,
    device: str | None = None,
    on_done: Callable[[dict], None] | None = None,
    wait: bool = True,
    poll: float = 0.5,
) -> int:
    """Run waiting jobs until none is left; returns how many ran here.

    ``device`` overrides each job's ``train.device``. ``wait``: while other local workers (or, with
    heartbeats, any) still run jobs, keep watching, so a job whose worker dies is taken over.
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    from plsearch.search import optuna_private as op
    from plsearch.search.workers import owner_state, requeue

    ran = 0
    while True:
        trial, busy = _next(runs)
        if trial is None:
            running = runs.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            watch = [
                t
                for t in running
                if runs.heartbeat or owner_state(t.user_attrs.get("worker"), runs.run_id) != "foreign"
            ]
            if not (busy and wait and watch):
                return ran
            time.sleep(poll)
            continue
        frozen = op.frozen_trial(runs.study, op.trial_id(trial))
        key = _job_of(frozen)
        job = runs.study.user_attrs.get(JOB_ATTR + str(key)) if key else None
        if job is None:  # asked when another machine took the last waiting job: give it back
            trial.set_user_attr("surplus", True)
            runs.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        key = str(key)
        trial.set_user_attr("job", key)
        try:
            with op.Heartbeat(runs.study, trial, runs.heartbeat[0] if runs.heartbeat else None):
                result = run_job(job, runs.out / "runs" / key, device=device)
                if not result.get("fail_reason"):
                    result.update(_keep_checkpoint(trial, runs.out, runs.out / "runs" / key))
            trial.set_user_attr("result", result)
            if result.get("fail_reason"):
                trial.set_user_attr("fail_reason", result["fail_reason"])
                runs.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                runs.study.tell(trial, float(result["val_dice"]))
        except UpdateFinishedTrialError:
            continue  # failed by another worker (no heartbeat in time) and re-queued: it runs again
        except KeyboardInterrupt:
            requeue(runs.study, op.trial_id(trial), "interrupted (KeyboardInterrupt)")
            raise
        ran += 1
        if on_done is not None:
            on_done(record(op.frozen_trial(runs.study, op.trial_id(trial)), job))


def record(t: Any, job: Mapping[str, Any]) -> dict[str, Any]:
    """A flat result row: the job (key, group, info, config) and its result (see ``run_job``)."""
    res = dict(t.user_attrs.get("result") or {})
    return {
        "key": job["key"],
        "group": job["group"],
        **dict(job.get("info") or {}),
        "state": t.state.name,
        "trial": t.number,
        **res,
        "config": job["config"],
    }


def results(runs: Runs, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The finished runs (one row per job key, latest counted trial), in job-submission order."""
    from plsearch.search.workers import counted

    attrs = runs.study.user_attrs
    rows: dict[str, dict] = {}
    for t in runs.study.get_trials(deepcopy=False):
        key = _job_of(t)
        if key and counted(t) and JOB_ATTR + key in attrs and "result" in t.user_attrs:
            rows[key] = record(t, attrs[JOB_ATTR + key])
    order = list(keys) if keys is not None else [k[len(JOB_ATTR) :] for k in attrs if k.startswith(JOB_ATTR)]
    return [rows[k] for k in order if k in rows]


def trivial_dice(masks: Any, num_classes: int = 1) -> float:
    """Best Dice of an all-background or all-foreground prediction on ``masks`` ``(n, h, w)``."""
    rule: Any
    try:
        from plsearch.train.metrics import trivial_dice as rule  # the search's trivial-predictor rule
    except ImportError:  # pragma: no cover - older plsearch
        rule = None
    if rule is not None:
        value = rule(masks) if num_classes == 1 else rule(masks, num_classes)
        return float(value["best"] if isinstance(value, Mapping) else value)
    import torch

    from plsearch.train.metrics import segmentation_metrics

    m = masks.long()
    return max(
        segmentation_metrics(torch.zeros_like(m), m, num_classes)["dice"],
        segmentation_metrics(torch.ones_like(m), m, num_classes)["dice"],
    )


def run_job(job: Mapping[str, Any], run_dir: Path, *, device: str | None = None) -> dict[str, Any]:
    """Train one job in ``run_dir`` (continuing its ``last.pt``), evaluate the best weights on test.

    Returns ``val_dice``/``val_iou`` (best epoch), ``test_dice``, ``test_iou``, ``test_trivial_dice``,
    ``degenerate`` (test Dice no better than the trivial predictor), ``best_epoch``, ``epochs_run``,
    ``steps``, ``seconds``, ``val_curve`` and ``test_curve`` (per epoch), ``checkpoint``, ``fail_reason``.
    """
    from plsearch.nn.checkpoint import read_checkpoint
    from plsearch.search.objective import load_data
    from plsearch.train.fit import NonFiniteLossError
    from plsearch.train.metrics import evaluate_model
    from plsearch.train.run import build_model, run_config

    cfg = RunConfig.from_dict(job["config"])
    if device:
        cfg = replace(cfg, train=replace(cfg.train, device=device))
    ncls, t0 = cfg.model.num_classes, time.perf_counter()
    splits = load_data(cfg.data, ncls)
    if len(splits["test"]) == 0:
        raise RunsError(
            f"job {job['key']!r}: the test split of {cfg.data.root or 'the synthetic set'} is empty; "
            "set data.test_fraction or a split CSV with test ids"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    curve_path = run_dir / "test_curve.jsonl"
    resume = False
    if (run_dir / "last.pt").is_file():
        try:
            resume = read_checkpoint(run_dir / "last.pt").get("run_config") == cfg.to_dict()
        except Exception:  # noqa: BLE001 - an unreadable leftover (killed while writing): start over
            resume = False
    done = int(read_checkpoint(run_dir / "last.pt")["train_state"]["epoch"]) if resume else 0
    test_curve = (
        [json.loads(x) for x in curve_path.read_text().splitlines()][:done] if resume and curve_path.is_file() else []
    )
    curve_path.write_text("".join(json.dumps(r) + "\n" for r in test_curve))
    points_path = run_dir / "test_points.jsonl"
    points = [json.loads(x) for x in points_path.read_text().splitlines()] if resume and points_path.is_file() else []
    points = [p for p in points if p["epoch"] <= done]
    points_path.write_text("".join(json.dumps(p) + "\n" for p in points))
    at = {int(e) for e in job.get("test_epochs") or ()}
    model = build_model(cfg)  # initial weights belong to the seed (the callbacks below evaluate it)

    def on_epoch(epoch: int, row: dict) -> None:
        if job.get("test_curve"):
            m = evaluate_model(model, splits["test"], num_classes=ncls, batch_size=cfg.train.eval_batch_size)
            test_curve.append({"epoch": epoch, "test_dice": m["dice"], "test_iou": m["iou"]})
            with open(curve_path, "a") as f:
                f.write(json.dumps(test_curve[-1]) + "\n")
        if at and (epoch in at or epoch == cfg.train.epochs):
            points.append({"epoch": epoch, **_best_so_far_test(model, run_dir / "best.pt", splits["test"], cfg)})
            with open(points_path, "a") as f:
                f.write(json.dumps(points[-1]) + "\n")

    out: dict[str, Any] = {"fail_reason": None, "checkpoint": str(run_dir / "best.pt")}
    try:
        fit_result = run_config(
            cfg, splits, model=model, out_dir=run_dir, resume=resume, on_epoch_end=on_epoch
        ).fit_result
    except NonFiniteLossError as e:
        return {**out, "fail_reason": f"non-finite loss: {e}", "seconds": round(time.perf_counter() - t0, 3)}
    hist = fit_result.history
    best = next((r for r in hist if r["epoch"] == fit_result.best_epoch), hist[-1])
    test = evaluate_model(model, splits["test"], num_classes=ncls, batch_size=cfg.train.eval_batch_size)
    trivial = trivial_dice(splits["test"].masks, ncls)
    out.update(
        val_dice=float(fit_result.best_val_dice),
        val_iou=float(best.get("val_iou", math.nan)),
        test_dice=float(test["dice"]),
        test_iou=float(test["iou"]),
        test_trivial_dice=round(trivial, 6),
        degenerate=bool(test["dice"] <= trivial),
        best_epoch=fit_result.best_epoch,
        epochs_run=fit_result.epochs_run,
        steps=[int(r["steps"]) for r in hist],
        val_curve=[round(float(r["val_dice"]), 6) for r in hist],
        test_curve=[round(float(r["test_dice"]), 6) for r in test_curve],
        train_seconds=round(sum(float(r["seconds"]) for r in hist), 3),
        cpu_curve=[round(float(r.get("cpu_seconds", math.nan)), 4) for r in hist],
        val_cpu_curve=[round(float(r.get("val_cpu_seconds", math.nan)), 4) for r in hist],
        test_points=points,
        val_trivial_dice=round(trivial_dice(splits["val"].masks, ncls), 6),
        seconds=round(time.perf_counter() - t0, 3),
        n_test=len(splits["test"]),
    )
    return out


def _best_so_far_test(model: Any, best_pt: Path, test: Any, cfg: RunConfig) -> dict[str, float]:
    """Test Dice of the weights ``best_pt`` holds (the best validation epoch so far), measured on a copy so
    the run's own model and RNG streams are untouched; ``cpu_seconds``: what the evaluation cost."""
    import copy

    from plsearch.nn.checkpoint import read_checkpoint
    from plsearch.train.metrics import evaluate_model

    t0 = time.process_time()
    net = copy.deepcopy(model)
    if best_pt.is_file():  # fit writes best.pt before the epoch's callback; absent only if no epoch improved
        net.load_state_dict(read_checkpoint(best_pt)["state_dict"])
    m = evaluate_model(net, test, num_classes=cfg.model.num_classes, batch_size=cfg.train.eval_batch_size)
    return {"test_dice": float(m["dice"]), "test_iou": float(m["iou"]), "cpu_seconds": time.process_time() - t0}


def _keep_checkpoint(trial: Any, out: Path, run_dir: Path) -> dict[str, Any]:
    """Move a finished run's ``best.pt`` into the artifact store of ``out`` (``plsearch.infer.artifacts``), linked
    from its trial; drop ``last.pt`` (only a resume needs it). Returns ``checkpoint`` and ``artifact_id``."""
    (run_dir / "last.pt").unlink(missing_ok=True)
    best = run_dir / "best.pt"
    from plsearch.infer.artifacts import keep_checkpoint, open_store, stored_file

    try:
        store = open_store(trial.study, out)  # the store the runs study records (--artifacts), else <out>/artifacts
        artifact_id = keep_checkpoint(trial, best, store)
    except Exception as e:  # noqa: BLE001 - the run's own best.pt stays where it is
        log.warning("could not keep %s as an artifact (%s); it stays in the run folder", best, e)
        return {"checkpoint": str(best)}
    kept = stored_file(store, artifact_id)
    if kept is not None:
        best.unlink()
        return {"checkpoint": str(kept.resolve()), "artifact_id": artifact_id}
    return {"checkpoint": str(best), "artifact_id": artifact_id}


def launch_workers(
    runs: Runs,
    workers: int,
    devices: Sequence[str] = (),
    *,
    on_line: Callable[[int, str, bool], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> list[int]:
    """Start ``workers`` processes (``python -m plsearch.runs``) sharing ``runs``; returns their exit codes.
    ``on_tick`` runs every few seconds meanwhile (the table recorder writes finished runs then)."""
    import os
    import sys

    import plsearch
    from plsearch.search.workers import launch

    env = dict(
        os.environ,
        PLSEARCH_STORAGE=runs.spec.target,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(plsearch.__file__).parents[1]), os.environ.get("PYTHONPATH")])
        ),
    )
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    cmds = []
    for i in range(workers):
        cmd = [sys.executable, "-m", "plsearch.runs", "--out", str(runs.out), "--study", runs.study.study_name]
        if devices:
            cmd += ["--device", devices[i % len(devices)]]
        cmds.append(cmd)
    relay = on_line or (
        lambda i, line, err: print(f"[w{i}] {line}", file=sys.stderr if err else sys.stdout, flush=True)
    )
    return launch(cmds, env, relay, on_tick=on_tick)


def run_jobs(
    jobs: Sequence[Job],
    out_dir: str | Path,
    name: str,
    *,
    workers: int = 1,
    devices: Sequence[str] = (),
    storage: str | None = None,
    on_done: Callable[[dict], None] | None = None,
    on_line: Callable[[int, str, bool], None] | None = None,
    artifacts: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Submit ``jobs`` (skipping finished ones), run them here or in ``workers`` processes; return all rows.

    ``artifacts``: the folder that keeps each run's best weights (default ``<out_dir>/artifacts``); it is
    recorded in the runs study, so the worker processes and later lookups find it.
    """
    runs = open_runs(out_dir, name, storage=storage)
    if artifacts is not None:
        from plsearch.infer.artifacts import open_store

        open_store(runs.study, runs.out, artifacts)
    submit(runs, jobs)
    if workers > 1:
        launch_workers(runs, workers, devices, on_line=on_line)
        work(runs, device=devices[0] if devices else None, on_done=on_done)  # anything a dead worker left
    else:
        work(runs, device=devices[0] if devices else None, on_done=on_done)
    return results(runs, [j.key for j in jobs])


def export_jsonl(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write result rows (without their bulky config) as JSON lines: the small committed table of a benchmark."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "config"}) + "\n" for r in rows))
    return p


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.is_file() else []
