"""Opening a search's study: storage, sampler, and the checks made before anything is stored."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from plsearch.search.storage import open_storage, parse_storage

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

SPACE_ATTR = "plsearch:space"


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


def open_study(space: "SearchSpace", storage: Any, study_name: str, seed: int, parallel: bool = False) -> Any:
    """Create or load the study; refuse one whose objectives differ from the space's."""
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
        study.set_user_attr(SPACE_ATTR, dict(space.raw))
    return study
