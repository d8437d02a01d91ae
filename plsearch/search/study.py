"""Opening a search's study: storage, sampler, and the checks made before anything is stored."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from plsearch.search.storage import open_storage, parse_storage

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

SPACE_ATTR = "plsearch:space"
MEASURE_ATTR = "plsearch:measurement"  # what every trial of the study is measured on (``measurement``)
# Not part of a measurement: where and how fast it runs, and the training seed (a resume may change these).
UNMEASURED = frozenset(
    {"data.cache", "train.device", "train.num_threads", "train.compile", "train.eval_batch_size", "train.amp"}
    | {"train.seed"}
)


class SearchError(ValueError):
    """The search cannot start (storage holds an incompatible study, images too small, ...)."""


def make_storage(spec: str | None, out_dir: Path) -> Any:
    """The Optuna storage for a ``--storage`` value (see ``plsearch.search.storage``)."""
    return open_storage(parse_storage(spec, out_dir))


def make_sampler(space: "SearchSpace", seed: int, parallel: bool = False) -> Any:
    """The space's sampler; TPE with several workers uses ``constant_liar`` unless the space says otherwise."""
    from plsearch.search.space import sampler_class

    options = dict(space.sampler_options)
    if parallel and space.sampler == "tpe":
        options.setdefault("constant_liar", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant_liar is "experimental"
        return sampler_class(space.sampler)(seed=seed, **options)


def check_inputs(space: "SearchSpace", extra: Mapping[str, Any]) -> None:
    """Load the data and check the image size against the networks' stride; raises DataError/SearchError."""
    from plsearch.config.gate import StrideError
    from plsearch.config.schema import ConfigError
    from plsearch.search.datacache import load_data

    cfgs, small = [], []
    for params in space.corner_params():
        try:
            cfgs.append(space.build(params, extra))
        except StrideError as e:
            small.append(e)
        except ConfigError:
            continue
    if not cfgs and small:
        need = min(e.need for e in small)
        raise SearchError(
            f"data.image_size={small[0].size} is smaller than the total stride of every "
            f"network in the space (at least {need}); raise data.image_size to {need} or more, "
            "or lower model.depth"
        )
    if cfgs:
        splits = load_data(cfgs[0].data, cfgs[0].model.num_classes)
        n_train, n_val = len(splits["train"]), len(splits["val"])
        if not n_train or not n_val:  # every trial would fail the same way: say it once, before any storage
            raise SearchError(
                f"{cfgs[0].data.root or 'the synthetic set'} gives {n_train} training and {n_val} "
                "validation images; a search needs both: add images (at least 2 pairs) or change "
                "data.val_fraction"
            )


def measurement(space: "SearchSpace", extra: Mapping[str, Any]) -> dict[str, Any]:
    """``{path: value}`` of every config field the space does not search that decides what a trial measures:
    the data and its split, the fidelity and training protocol, the fixed model fields (defaults, then the
    space's fixed values, then ``extra``: --data, --set). Plain data, stored in the study at creation."""
    from plsearch.config.gate import measurement as of_config
    from plsearch.config.schema import RunConfig, qualify_key

    values = of_config(RunConfig(), [f"{sec}.{k}" for sec, sub in RunConfig().to_dict().items() for k in sub])
    searched = {a.path for a in space.axes}
    for path, value in [*space.fixed, *extra.items()]:
        values[qualify_key(path)] = value
    if values.get("data.root"):
        values["data.root"] = str(Path(values["data.root"]).resolve())
    import json

    kept = {k: v for k, v in values.items() if k not in UNMEASURED and k not in searched}
    return dict(json.loads(json.dumps(kept)))  # as the storage will hand it back (tuples are lists)


def _check_measurement(existing: Any, study_name: str, measure: Mapping[str, Any] | None) -> None:
    """A resumed study measures as it did: refuse ``measure`` where it differs from the one stored."""
    from plsearch.config.gate import changed_measurement

    stored = existing.user_attrs.get(MEASURE_ATTR)
    if measure is None or not isinstance(stored, Mapping):
        return  # a study from before the measurement was stored: nothing to compare
    diff = changed_measurement(stored, measure)
    if diff:
        path, old, new = diff
        flag = "--data" if path == "data.root" else f"--set {path}"
        raise SearchError(
            f"study {study_name!r} measured every trial with {path}={old!r}, this run asks for {new!r}: a resumed "
            f"search keeps its data, split and fidelity; drop {flag} (or restore the space file), or start a new "
            "study with another --out"
        )


def open_study(
    space: "SearchSpace",
    storage: Any,
    study_name: str,
    seed: int,
    parallel: bool = False,
    measure: Mapping[str, Any] | None = None,
) -> Any:
    """Create or load the study; refuse one whose objectives differ from the space's, or which measured its
    trials on other data, another split or another fidelity than ``measure`` (see ``measurement``)."""
    import optuna

    from plsearch.search.pruning import study_pruner

    n_existing = 0
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage)
        n_existing = len(existing.get_trials(deepcopy=False))
        if [d.name.lower() for d in existing.directions] != space.directions or (
            existing.metric_names or space.metric_names
        ) != space.metric_names:
            raise SearchError(
                f"study {study_name!r} in this storage optimizes {existing.metric_names} "
                f"{[d.name.lower() for d in existing.directions]}, the space asks for {space.metric_names} "
                f"{space.directions}; pass another --study-name or --out"
            )
        _check_measurement(existing, study_name, measure)
    except KeyError:
        pass
    # A resumed study gets a fresh sampler stream (seed + trials so far): the same seed would replay
    # the random start-up samples already tried.
    directions: Any = space.directions  # "maximize" / "minimize", checked by the space parser
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,
        sampler=make_sampler(space, seed + n_existing, parallel),
        pruner=study_pruner(space),
        load_if_exists=True,
    )
    if n_existing == 0 and study.user_attrs.get(SPACE_ATTR) is None:
        from plsearch.search.start import enqueue_start

        enqueue_start(study, space.start)  # once, at creation: trials 0..k-1, whatever the workers' timing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is "experimental" since Optuna 3.2
            study.set_metric_names(space.metric_names)
        if measure is not None:
            study.set_user_attr(MEASURE_ATTR, dict(measure))
        study.set_user_attr(SPACE_ATTR, dict(space.raw))
    return study
