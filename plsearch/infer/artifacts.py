"""Keep what a search trained: each trial's best weights as an Optuna artifact, linked from the trial.

A trained trial's best checkpoint (the same plain-data ``best.pt`` that ``plsearch.train.fit`` writes) is
uploaded with ``optuna.artifacts.upload_artifact`` while the trial runs, so the study itself records
it (a trial system attribute ``artifacts:<id>``, which optuna-dashboard lists). The bytes go to an
artifact store: by default a ``FileSystemArtifactStore`` in the study's results folder,
``results/NAME/artifacts/`` (also for a PostgreSQL study: the folder of ``--out``), or a folder the
user names (``--artifacts PATH``, e.g. a shared disk). Evaluating, predicting, exporting or
fine-tuning a found network then needs no retraining: ``plsearch.load("results/NAME:12")``.

Disk stays bounded: :func:`prune` keeps the weights of the Pareto set (feasible trials) and of the
top ``keep_top`` trials by the first objective (default 5; ``--keep-top K``) and removes the others from the
store. The preset references' weights are study artifacts (``reference_<name>.pt``) and are never pruned.
A trial's checkpoint is about 4 bytes per parameter (plus a few kB); see the README for the size of
the default search.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from plsearch.outputs import disk_full

__all__ = [
    "ARTIFACT_DIR",
    "DEFAULT_KEEP_TOP",
    "ArtifactError",
    "artifact_store",
    "bound",
    "check_store_path",
    "keep_checkpoint",
    "keep_model",
    "open_store",
    "prune",
    "recorded_store",
    "save_model",
    "store_bytes",
    "stored_file",
    "trial_checkpoint",
    "trial_config",
    "trial_weights",
]

log = logging.getLogger(__name__)

ARTIFACT_DIR = "artifacts"
DEFAULT_KEEP_TOP = 5
STORE_ATTR = "plsearch:artifact_store"  # study system attribute: where the weights went
WEIGHTS_NAME = "best.pt"


class ArtifactError(ValueError):
    """A trial's kept weights cannot be found or read; the message says why and the fix."""


def artifact_store(out_dir: str | Path | None = None, path: str | Path | None = None) -> Any:
    """The file-system artifact store at ``path``, else ``<out_dir>/artifacts`` (created)."""
    from optuna.artifacts import FileSystemArtifactStore

    if path is None and out_dir is None:
        raise ArtifactError("no artifact store: pass the study's --out folder or --artifacts PATH")
    base = Path(path) if path is not None else Path(out_dir) / ARTIFACT_DIR  # type: ignore[arg-type]
    if base.exists() and not base.is_dir():
        raise ArtifactError(f"artifact store {base} is a file; pass a folder for --artifacts")
    base.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base)


def check_store_path(path: str | Path) -> Path:
    """``path`` resolved, if it can be an artifact store (a folder, or a new one under a writable folder).

    Writes nothing, so a CLI can refuse a bad ``--artifacts`` before it touches a study.

    Raises:
        ArtifactError: the path is a file, lies under a file, or its nearest existing folder is not writable.
    """
    p = Path(path).expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise ArtifactError(f"--artifacts {path} is a file; pass a folder (it is created if missing)")
    here = p
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        raise ArtifactError(f"--artifacts {path} lies under the file {here}; pass a folder path")
    if not os.access(here, os.W_OK | os.X_OK):
        raise ArtifactError(f"--artifacts {path}: {here} is not writable; pass a folder you can write to")
    return p


def recorded_store(study: Any) -> str | None:
    """The artifact store folder a study records (:data:`STORE_ATTR`), or None."""
    from plsearch.search.optuna_private import study_system_attrs

    try:
        value = study_system_attrs(study).get(STORE_ATTR)
    except Exception:  # noqa: BLE001 - a storage that cannot be read here: fall back to the default folder
        return None
    return str(value) if value else None


def _record_store(study: Any, where: str | None) -> None:
    from plsearch.search.optuna_private import has_storage, set_study_system_attr

    if not where or not has_storage(study):
        return
    try:
        if recorded_store(study) != where:
            set_study_system_attr(study, STORE_ATTR, where)
    except Exception as e:  # noqa: BLE001 - a read-only storage: lookups fall back to the default folder
        log.debug("could not record the artifact store in the study (%s)", e)


def open_store(study: Any, out_dir: str | Path, path: str | Path | None = None) -> Any:
    """The artifact store of ``study``, recorded in the study so every later lookup finds it.

    ``path`` (``--artifacts``) names it; without it the study's recorded store is reused (a resumed
    search keeps its weights in one place), else ``<out_dir>/artifacts``. A ``path`` other than the
    one the study records, while that one still holds weights, is refused: the earlier trials' weights
    would become unfindable.

    Raises:
        ArtifactError: ``path`` is unusable (:func:`check_store_path`) or conflicts with the recorded store.
    """
    recorded = recorded_store(study)
    if path is not None:
        target = check_store_path(path)
        old = Path(recorded) if recorded else None
        if old is not None and old != target and old.is_dir() and any(old.iterdir()):
            raise ArtifactError(
                f"--artifacts {path}: this study keeps its weights in {old}; pass --artifacts {old} "
                "(or move that folder's files to the new one first)"
            )
    elif recorded and Path(recorded).is_dir():
        target = Path(recorded)
    else:
        target = Path(out_dir).resolve() / ARTIFACT_DIR
    store = artifact_store(path=target)
    _record_store(study, _store_path(store))
    return store


def _folder_of(store: Any) -> Path | None:
    from plsearch.search.optuna_private import store_folder

    return store_folder(store)


def _store_path(store: Any) -> str | None:
    from plsearch.search.optuna_private import store_folder

    base = store_folder(store)
    return str(base) if base is not None else None


def keep_checkpoint(trial_or_study: Any, checkpoint: str | Path, store: Any, *, name: str = WEIGHTS_NAME) -> str:
    """Upload ``checkpoint`` as an artifact of a running trial (or of a study, for references); returns its id.

    ``name`` is the artifact's file name (``best.pt`` for trials; e.g. ``reference_unet.pt`` for a study).
    """
    import optuna

    src = Path(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / name  # upload_artifact records the file's base name
        try:
            os.link(src, named)
        except OSError:
            named.write_bytes(src.read_bytes())
        folder = _folder_of(store)
        before = set(os.listdir(folder)) if folder is not None and folder.is_dir() else None
        try:
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=store, file_path=str(named), study_or_trial=trial_or_study
            )
        except OSError as e:  # e.g. a full disk: remove the half-written artifact, name the problem in one line
            if folder is not None and before is not None:
                for left in set(os.listdir(folder)) - before:
                    (folder / left).unlink(missing_ok=True)
            full = disk_full(e, folder if folder is not None else src)
            if full is not None:
                raise full from None
            raise
    _record_store(getattr(trial_or_study, "study", trial_or_study), _store_path(store))
    return artifact_id


def keep_model(
    trial_or_study: Any,
    model: Any,
    store: Any,
    *,
    run_config: Any = None,
    name: str = WEIGHTS_NAME,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write ``model``'s weights as a plsearch checkpoint and :func:`keep_checkpoint` it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(Path(tmp) / name, model, run_config=run_config, extra=extra)
        return keep_checkpoint(trial_or_study, path, store, name=name)


def save_model(path: str | Path, model: Any, *, run_config: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights as a plsearch checkpoint at ``path`` (what ``plsearch.load`` reads)."""
    from plsearch.config.schema import to_dict
    from plsearch.nn.checkpoint import model_config_dict, save_checkpoint

    run = to_dict(run_config) if run_config is not None and not isinstance(run_config, dict) else run_config
    return Path(
        save_checkpoint(
            Path(path),
            model.state_dict(),
            model_config=model_config_dict(model),
            run_config=run,
            train_state=dict(extra or {}),
        )
    )


def _metas(trial: Any, study: Any) -> list[Any]:
    """The ``.pt`` artifacts of ``trial`` (a ``FrozenTrial`` of ``study``)."""
    import optuna

    from plsearch.search.optuna_private import storage_of

    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=storage_of(study))
    return [m for m in metas if m.filename.endswith(".pt")]


def _default_store(study: Any, ref_folder: Path | None) -> Any:
    recorded = recorded_store(study)
    if recorded and Path(recorded).is_dir():
        return artifact_store(path=recorded)
    if ref_folder is not None and (ref_folder / ARTIFACT_DIR).is_dir():
        return artifact_store(path=ref_folder / ARTIFACT_DIR)
    here = ref_folder / ARTIFACT_DIR if ref_folder is not None else Path("RESULTS") / ARTIFACT_DIR
    looked = ", ".join(str(p) for p in (recorded, ref_folder and here) if p)
    raise ArtifactError(
        f"this study's kept weights are not here (looked in {looked}); make the folder the search kept "
        f"them in{f' ({recorded})' if recorded else ''} available at that path, or copy its files into {here}"
    )


def trial_weights(ref: Any, *, store: Any = None) -> tuple[Any, str, Any]:
    """``(frozen trial, artifact id, store)`` of a ``TrialRef``'s newest kept checkpoint."""
    from plsearch.search.studies import load_study

    sref = ref.study
    study = load_study(storage=sref.storage, study_name=sref.name, out_dir=sref.out)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == ref.number]
    if not trials:
        raise ArtifactError(f"{sref} has no trial {ref.number} (it has {len(study.trials)} trials, numbered from 0)")
    trial = trials[0]
    metas = _metas(trial, study)
    if not metas:
        why = (
            f"it is {trial.state.name}"
            if trial.state.name != "COMPLETE"
            else "it was not trained (infeasible or a duplicate) or ran before plsearch kept weights"
        )
        raise ArtifactError(
            f"trial {ref.number} of {sref} kept no weights ({why}); retrain its config with "
            f"python -m plsearch.train --trial {ref}"
        )
    return trial, metas[-1].artifact_id, (store if store is not None else _default_store(study, _folder(sref)))


def trial_config(ref: Any) -> Any:
    """The resolved ``RunConfig`` a search trial trained with (its record), to retrain it at another fidelity."""
    from plsearch.config.schema import RunConfig
    from plsearch.search.studies import load_study

    sref = ref.study
    study = load_study(storage=sref.storage, study_name=sref.name, out_dir=sref.out)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == ref.number]
    if not trials:
        raise ArtifactError(f"{sref} has no trial {ref.number} (it has {len(study.trials)} trials, numbered from 0)")
    config = trials[0].user_attrs.get("config")
    if not config:
        raise ArtifactError(
            f"trial {ref.number} of {sref} has no recorded config (its sampled parameters did not "
            "form a valid config); choose a trained trial from pareto.csv"
        )
    return RunConfig.from_dict(config)


def _folder(sref: Any) -> Path | None:
    try:
        return Path(sref.folder)
    except ValueError:
        return None


def trial_checkpoint(ref: Any, *, store: Any = None) -> Path:
    """A local checkpoint file holding a trial's kept weights (downloaded once into the plsearch cache)."""
    import optuna

    from plsearch.data.folder import cache_dir

    _, artifact_id, store = trial_weights(ref, store=store)
    target = cache_dir() / "artifacts" / f"{artifact_id}.pt"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        optuna.artifacts.download_artifact(artifact_store=store, file_path=str(tmp), artifact_id=artifact_id)
    except Exception as e:  # noqa: BLE001 - ArtifactNotFound, OSError, backend errors
        tmp.unlink(missing_ok=True)
        raise ArtifactError(
            f"the weights of trial {ref.number} of {ref.study} are gone from the artifact store "
            f"({type(e).__name__}; the disk bound keeps only the Pareto set and the top trials); "
            f"retrain its config with python -m plsearch.train --trial {ref}"
        ) from None
    os.replace(tmp, target)
    return target


def _feasible(t: Any) -> bool:
    """No violated constraint and not marked infeasible."""
    from plsearch.search.optuna_private import constraint_values

    return all(c <= 0 for c in constraint_values(t)) and t.user_attrs.get("feasible", True) is not False


def _kept_numbers(study: Any, keep_top: int) -> set[int]:
    import optuna

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    feasible = [t for t in done if _feasible(t)]
    keep: set[int] = set()
    try:
        keep |= {t.number for t in study.best_trials}  # the Pareto set (Optuna skips infeasible trials)
    except (RuntimeError, ValueError):
        pass
    if keep_top > 0 and feasible:
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        top = sorted(feasible, key=lambda t: -sign * (t.values[0] if t.values else float("-inf")))[:keep_top]
        keep |= {t.number for t in top}
    return keep


def prune(study: Any, store: Any, *, keep_top: int = DEFAULT_KEEP_TOP) -> dict[str, int]:
    """Remove kept weights of finished trials outside the Pareto set and the top ``keep_top``.

    Running trials are never touched. Returns ``{"kept": trials with weights, "removed": artifacts removed}``.
    """
    import optuna

    keep = _kept_numbers(study, keep_top)
    kept = removed = 0
    for t in study.get_trials(
        deepcopy=False,
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL),
    ):
        metas = _metas(t, study)
        if not metas:
            continue
        if t.number in keep:
            kept += 1
            continue
        for m in metas:
            try:
                store.remove(m.artifact_id)
                removed += 1
            except Exception:  # noqa: BLE001,S112 - already removed (a second worker pruned it)
                continue
    return {"kept": kept, "removed": removed}


def bound(study: Any, store: Any, keep_top: int | None = None) -> dict[str, int]:
    """:func:`prune` after a trial finished (a new front point can push earlier ones off); never raises."""
    try:
        return prune(study, store, keep_top=DEFAULT_KEEP_TOP if keep_top is None else keep_top)
    except Exception as e:  # noqa: BLE001 - a storage or disk hiccup must not stop the search
        log.warning("could not bound the kept weights (%s)", e)
        return {"kept": 0, "removed": 0}


def store_bytes(store: Any) -> int:
    """Bytes a file-system store holds now."""
    base = _store_path(store)
    return sum(p.stat().st_size for p in Path(base).rglob("*") if p.is_file()) if base else 0


def stored_file(store: Any, artifact_id: str) -> Path | None:
    """The file a file-system store keeps ``artifact_id`` in (what ``plsearch.load`` can read), or None."""
    from plsearch.search.optuna_private import artifact_file

    return artifact_file(store, artifact_id)
