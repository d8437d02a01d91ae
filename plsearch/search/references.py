"""Reference points: the presets (plnet, plnet-small, bionet, unet) trained at the search's fidelity.

A preset keeps its own shape but takes the space's data/train values and a width scaled like the
space's: ``base_width = preset base_width * space base_width / 32`` (PL-Net's 32), so PL-Net at a
CPU fidelity of base width 8 is compared with U-Net at 16. Results are cached in
``<out>/references.json`` under a hash of the resolved config, so a resumed search does not retrain.

Each reference keeps its best weights (at the chosen learning rate), so it can be evaluated, exported
or compared without retraining: ``plsearch.load(references["unet"]["checkpoint"])``. The training
process (a worker process when several train at once) writes ``<out>/references/<name>.pt``; given the
study and its artifact store (``keep=``, what the search passes), the file then becomes a study artifact
``reference_<name>.pt`` (listed by optuna-dashboard, never pruned) and the record's ``checkpoint`` is the
stored file, ``artifact_id`` its id. A reference is not a trial, so it has no ``results/NAME:N`` name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from plsearch.config.schema import ConfigError, ModelConfig, RunConfig

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

log = logging.getLogger(__name__)
FILE = "references.json"
WEIGHTS_DIR = "references"


def reference_config(space: "SearchSpace", name: str, extra: Mapping[str, Any] | None = None) -> RunConfig:
    """Preset ``name`` at the space's fidelity (fixed data/train values, scaled width), through the gate."""
    from plsearch.config.gate import resolve
    from plsearch.config.presets import preset_config
    from plsearch.search.datacache import load_data

    given = [(p, v) for p, v in (*space.fixed, *(extra or {}).items())]
    model = dict(ModelConfig().to_dict(), **{p.split(".", 1)[1]: v for p, v in given if p.startswith("model.")})
    preset = preset_config(name)
    sized = {
        "model.base_width": max(1, round(preset.base_width * model["base_width"] / ModelConfig().base_width)),
        "model.num_classes": model["num_classes"],
        "model.spatial_dims": model["spatial_dims"],
    }
    fidelity = [(p, v) for p, v in given if not p.startswith("model.")]  # the preset keeps its own shape
    cfg = resolve(RunConfig(model=preset), [*fidelity, *sized.items()])
    return resolve(cfg, {}, data=load_data(cfg.data, cfg.model.num_classes))


# fields added after caches were written: left out of the key at their default, so those caches stay valid
_ADDED_DEFAULTS = {("data", "volume_fit"): "resize"}


def config_key(cfg: RunConfig) -> str:
    tree = cfg.to_dict()
    for (section, name), default in _ADDED_DEFAULTS.items():
        if tree.get(section, {}).get(name) == default:
            del tree[section][name]
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def load_references(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(out_dir) / FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("ignoring unreadable %s; references will be retrained", path)
        return {}


def train_references(
    space: "SearchSpace",
    out_dir: str | Path,
    extra: Mapping[str, Any] | None = None,
    on_reference: Callable[[str, dict[str, Any], bool], None] | None = None,
    workers: int = 1,
    keep: tuple[Any, Any] | None = None,
) -> dict[str, dict]:
    """Train (or load from the cache) each of ``space.references``; returns ``{name: record}``.

    A record holds ``config``, ``key``, ``profile`` (params, macs), ``metrics`` (val_dice, ...),
    ``seconds`` and ``fail_reason`` (None unless training failed). When the space searches ``train.lr``,
    each preset trains at ``plsearch.train.lr.lr_candidates(space)`` (3 rates spread over the axis) and keeps
    the best on validation (``lr``, ``lr_tried``; ``config`` holds the chosen rate): the same rule
    confirmation runs use, so no preset is compared at a rate that does not suit it.
    ``on_reference(name, record, cached)`` is called after each one. ``workers`` > 1 trains that many
    presets at once, each in its own process with one thread (small trials do not scale across threads; README, Speed).
    ``keep=(study, store)`` moves each trained reference's weights into the study's artifact store
    (module docstring); without it they stay in ``<out>/references/<name>.pt``. Either way the record's
    ``checkpoint`` is a file ``plsearch.load`` reads.
    """
    from plsearch.train.lr import lr_candidates

    out = Path(out_dir)
    cache = load_references(out)
    result: dict[str, dict] = {}
    todo: dict[str, tuple[RunConfig, str, list]] = {}
    for name in space.references:
        try:
            cfg = reference_config(space, name, extra)
        except ConfigError as e:  # e.g. the preset's stride exceeds the space's images: say so, go on
            result[name] = {
                "name": name,
                "key": None,
                "config": None,
                "profile": {"params": None, "macs": None},
                "metrics": None,
                "fail_reason": f"ConfigError: {e}",
                "seconds": 0.0,
            }
            if on_reference:
                on_reference(name, result[name], False)
            continue
        lrs = lr_candidates(space)  # the space's train.lr axis: each preset keeps its best rate on val
        key = config_key(cfg) + ("-lr" + ",".join(f"{x:g}" for x in lrs) if lrs else "")
        if cache.get(name, {}).get("key") == key:
            result[name] = cache[name]
            if on_reference:
                on_reference(name, cache[name], True)
            continue
        todo[name] = (cfg, key, list(lrs))

    def done(name: str, rec: dict[str, Any]) -> None:
        if keep is not None and rec.get("checkpoint"):
            rec.update(_to_store(name, Path(rec["checkpoint"]), keep, (cache.get(name) or {}).get("artifact_id")))
        result[name] = cache[name] = rec
        out.mkdir(parents=True, exist_ok=True)
        (out / FILE).write_text(json.dumps(cache, indent=1))
        if on_reference:
            on_reference(name, rec, False)

    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child of a process that has run OpenMP code can hang in it
        pool = ProcessPoolExecutor(
            min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
        )
        try:
            jobs = {pool.submit(_train_one, space, name, *spec, extra, out): name for name, spec in todo.items()}
            for job in as_completed(jobs):
                done(jobs[job], job.result())
        except BaseException:  # Ctrl-C or SIGTERM: stop now; finished references are cached, a rerun trains the rest
            _stop(pool)
            raise
        pool.shutdown()
    else:
        for name, spec in todo.items():
            done(name, _train_one(space, name, *spec, extra, out))
    return {name: result[name] for name in space.references if name in result}


def _stop(pool: Any) -> None:
    """End a process pool without waiting for the references it is training (``shutdown`` would wait for
    them: minutes). The executor has no public call to stop running tasks, so its processes are killed."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    for proc in procs:
        proc.kill()  # SIGKILL: a SIGTERM the parent ignores is ignored by spawned children too
    pool.shutdown(wait=False, cancel_futures=True)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _to_store(name: str, path: Path, keep: tuple[Any, Any], old_id: str | None) -> dict[str, Any]:
    """Upload a reference's checkpoint as a study artifact; ``checkpoint`` becomes the stored file."""
    from plsearch.infer.artifacts import keep_checkpoint, stored_file

    study, store = keep
    try:
        artifact_id = keep_checkpoint(study, path, store, name=f"reference_{name}.pt")
    except Exception as e:  # noqa: BLE001 - the weights stay in <out>/references, still loadable
        log.warning("could not keep reference %s as an artifact (%s); it stays at %s", name, e, path)
        return {}
    kept = stored_file(store, artifact_id)
    if kept is None:
        return {"artifact_id": artifact_id}
    path.unlink(missing_ok=True)
    if old_id and old_id != artifact_id:  # a retrained reference replaces its earlier weights
        try:
            store.remove(old_id)
        except Exception:  # noqa: BLE001 - already gone
            log.debug("reference %s: earlier weights %s already gone", name, old_id)
    return {"checkpoint": str(kept), "artifact_id": artifact_id}


def _train_one(
    space: "SearchSpace",
    name: str,
    cfg: RunConfig,
    key: str,
    lrs: list,
    extra: Mapping[str, Any] | None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Profile and train one reference (at each candidate rate); a failed training is recorded, not raised.

    With ``out``, the chosen rate's best weights are written to ``<out>/references/<name>.pt`` here
    (in the worker process when references train in parallel) and the record's ``checkpoint`` names it.
    """
    from plsearch.infer.artifacts import save_model
    from plsearch.search.objective import Objective, train_and_score
    from plsearch.train.lr import choose_lr

    t0 = time.perf_counter()
    prof = Objective(space, extra).measure(cfg)
    rec: dict[str, Any] = {
        "name": name,
        "key": key,
        "config": cfg.to_dict(),
        "profile": prof,
        "metrics": None,
        "fail_reason": None,
    }
    folder = Path(out) / WEIGHTS_DIR if out is not None else None
    written: dict[float, Path] = {}  # lr -> its best weights (one file per candidate rate until one is chosen)

    def train(c: RunConfig) -> dict[str, Any]:
        def keep(model: Any) -> None:
            if folder is not None:
                written[c.train.lr] = save_model(folder / f"{name}.lr{c.train.lr:g}.tmp", model, run_config=c)

        return train_and_score(c, prof, keep=keep)

    try:
        choice = choose_lr(cfg, lrs, train)
        rec["metrics"], rec["lr"] = choice.result, choice.lr
        rec["lr_tried"] = {f"{k:g}": v for k, v in choice.tried.items()}
        rec["config"] = replace(cfg, train=replace(cfg.train, lr=choice.lr)).to_dict()
        if folder is not None and choice.lr in written:
            final = folder / f"{name}.pt"
            written.pop(choice.lr).replace(final)
            rec["checkpoint"] = str(final.resolve())
    except (RuntimeError, MemoryError, ValueError) as e:  # NonFiniteLossError, OOM: keep going
        rec["fail_reason"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        for path in written.values():  # the rates not chosen
            path.unlink(missing_ok=True)
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec
