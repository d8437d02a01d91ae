"""The sampler contract: what the search relies on from a registered sampler (``register_sampler``).

The entry is called as ``cls(seed=seed, **options)``: it takes ``seed`` and its signature names its
options (the space's ``sampler:`` keys are checked against it). What it returns is an Optuna
``BaseSampler``. Asked for a space's axes (int, stepped float, log float, categorical) over eleven trials
of a multi- or a single-objective study (it may refuse one kind, not both), it gives values inside every
axis, and the same seed gives the same values (a search and its resume are reproducible).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from plsearch.testing.common import ContractError, require

N_TRIALS = 11  # TPE and GP sample at random for 10, then from their model once
AXES = {
    "model.steps": {"low": 1, "high": 4},
    "model.ocs": {"low": 0.5, "high": 2.0, "step": 0.25},
    "train.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
    "model.block": ["plconv", "convbnrelu"],
}


def _inside(axis: Any, value: Any) -> bool:
    if axis.kind == "categorical":
        return value in axis.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not axis.low <= value <= axis.high:
        return False
    if axis.kind == "int" and value != int(value):
        return False
    if axis.step:
        n = (value - axis.low) / axis.step
        return abs(n - round(n)) < 1e-6
    return True


def _run(cls: Any, space: Any, directions: Any, seed: int) -> list[dict[str, Any]]:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental samplers and options
        study = optuna.create_study(directions=directions, sampler=cls(seed=seed))
        out = []
        for _ in range(N_TRIALS):
            trial = study.ask()
            params = space.sample(trial)
            out.append(params)
            score = params["model.steps"] * 0.1 + params["model.ocs"] * 0.2 - params["train.lr"]
            values = [score, float(params["model.steps"]) * params["model.ocs"]][: len(directions)]
            study.tell(trial, values if len(values) > 1 else values[0])
    return out


def check_sampler(name: str) -> None:
    """Check the sampler registered as ``name`` against the contract; raises ``ContractError``.

    Runs in seconds: four runs of eleven trials (two seeds' worth of reproducibility per study kind).
    """
    import optuna

    from plsearch.search.registries import get_sampler
    from plsearch.search.space import parse_space

    cls = get_sampler(name)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        raise ContractError(f"sampler {name}: {cls!r} has no signature to read its options from") from None
    require(
        "seed" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()),
        f"sampler {name}: {cls!r} takes no seed= (the search seeds every sampler)",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = cls(seed=0)
    require(
        isinstance(sampler, optuna.samplers.BaseSampler),
        f"sampler {name}: cls(seed=0) returned {type(sampler).__name__}, not an optuna.samplers.BaseSampler",
    )
    space = parse_space({**AXES, "pruning": False, "references": False})
    ran = 0
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        for directions in (["maximize", "minimize"], ["maximize"]):
            try:
                first = _run(cls, space, directions, seed=0)
            except (ValueError, NotImplementedError):
                continue  # a sampler for one kind of study (e.g. single-objective CMA-ES)
            ran += 1
            for i, got in enumerate(first):
                for axis in space.axes:
                    require(
                        _inside(axis, got[axis.path]),
                        f"sampler {name}: trial {i} got {axis.path}={got[axis.path]!r}, outside the axis {axis}",
                    )
            again = _run(cls, space, directions, seed=0)
            require(
                first == again,
                f"sampler {name} ({len(directions)} objective(s)): seed 0 gave {first[0]} then {again[0]} for the "
                "first trial; the same seed must give the same samples",
            )
    finally:
        optuna.logging.set_verbosity(verbosity)
    require(ran, f"sampler {name}: refused both a multi- and a single-objective study")
