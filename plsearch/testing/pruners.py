"""The pruner contract: what the search relies on from a registered pruner (``register_pruner``).

A pruner's options are its own: a frozen ``Options`` dataclass on its factory (every field with a
default, hashable, unknown names refused) or a ``parse_options(mapping)`` classmethod that refuses an
unknown name with a ``ValueError`` naming it. ``factory(space)`` builds it for a multi-objective or a
single-objective space (it may refuse one kind with a ``ValueError``, not both). Run as the search runs it,
after every epoch of a few trials in one Optuna study (``EpochState``), ``check`` returns None or one line;
it never stops a trial that has nothing to compare with (the study's first), nor the trial that is best at
every epoch and smallest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plsearch.testing.common import ContractError, require

EPOCHS = 9
# (final Dice, params) of the trials run in order: the first has no peer, the last is best at every epoch
TRIALS = ((0.5, 2000.0), (0.3, 3000.0), (0.45, 2500.0), (0.2, 4000.0), (0.4, 3500.0), (0.35, 3000.0), (0.95, 1000.0))
UNKNOWN = "plsearch_no_such_option"


def _options(name: str, entry: Any) -> Any:
    """Check the entry's options; returns its defaults."""
    from plsearch.search.registries import pruner_options

    parse = getattr(entry, "parse_options", None)
    options_cls = getattr(entry, "Options", None)
    if options_cls is not None and not callable(parse):
        require(
            getattr(getattr(options_cls, "__dataclass_params__", None), "frozen", False),
            f"pruner {name}: Options must be a frozen dataclass (options are parsed once and shared by every trial)",
        )
        missing = [
            f.name
            for f in dataclasses.fields(options_cls)
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        require(not missing, f"pruner {name}: Options fields without a default: {missing} (a space may omit any)")
    try:
        defaults = pruner_options(name, {})
    except Exception as e:  # noqa: BLE001 (named in the message)
        raise ContractError(f"pruner {name}: a space with no options fails to parse ({type(e).__name__}: {e})") from e
    try:
        hash(defaults)
    except TypeError:
        require(False, f"pruner {name}: its options {defaults!r} are not hashable (a SearchSpace is a frozen value)")
    if options_cls is not None or callable(parse):
        try:
            pruner_options(name, {UNKNOWN: 1})
        except ValueError as e:
            require(UNKNOWN in str(e), f"pruner {name}: the error for an unknown option does not name it: {e}")
        else:
            require(False, f"pruner {name}: an unknown option ({UNKNOWN}) was accepted; refuse it with a ValueError")
    return defaults


def _spaces(name: str, options: Any) -> list[Any]:
    from plsearch.search.parsing import Pruning
    from plsearch.search.space import parse_space

    out = []
    for objectives in (["val_dice", "params"], ["val_dice"]):
        space = parse_space(
            {"model.steps": {"low": 1, "high": 2}, "objectives": objectives, "pruning": False, "references": False}
        )
        out.append(dataclasses.replace(space, pruning=Pruning(True, name, options)))
    return out


def _run(name: str, entry: Any, space: Any) -> None:
    """The trials of ``TRIALS`` in one in-memory study, ``check`` after every epoch but the last."""
    import optuna
    from optuna.trial import TrialState

    from plsearch.search.pruning import CURVE_ATTR, EpochState, size_keys, study_pruner

    study = optuna.create_study(directions=space.directions, pruner=study_pruner(space))
    keys = size_keys(space)
    for i, (q, params) in enumerate(TRIALS):
        pruner = entry(space)
        require(callable(getattr(pruner, "check", None)), f"pruner {name}: {pruner!r} has no check(state) method")
        trial = study.ask()
        prof = {"params": params, "macs": 10 * params, "latency_ms": params / 1000}
        trial.set_user_attr("profile", prof)
        curve: list[float] = []
        stopped = None
        for epoch in range(1, EPOCHS + 1):
            curve.append(round(q * (1 - 0.5**epoch), 6))
            trial.set_user_attr(CURVE_ATTR, list(curve))
            if epoch == EPOCHS:
                break
            size = tuple(float(prof[k]) for k in keys)
            row = {"val_dice": curve[-1], "val_iou": curve[-1] / 2}
            reason = pruner.check(EpochState(trial, epoch, EPOCHS, tuple(curve), size, keys, None, row))
            require(
                reason is None or (isinstance(reason, str) and reason.strip() and "\n" not in reason),
                f"pruner {name}: check returned {reason!r} at epoch {epoch}; return None or one line (the reason)",
            )
            if reason is not None:
                stopped = (epoch, reason)
                break
        which = "the study's first trial (nothing to compare with)" if i == 0 else None
        if i == len(TRIALS) - 1:
            which = "the trial best at every epoch and smallest"
        require(
            which is None or stopped is None,
            f"pruner {name} ({len(space.objectives)} objective(s)): stopped {which} at epoch "
            f"{stopped and stopped[0]}: {stopped and stopped[1]}",
        )
        if stopped is not None:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            values = [curve[-1], params][: len(space.objectives)]
            study.tell(trial, values if len(values) > 1 else values[0])


def check_pruner(name: str) -> None:
    """Check the pruner registered as ``name`` against the contract; raises ``ContractError``.

    Runs in well under a second: seven short trials (nine epochs, no training) per objective count.
    """
    import optuna

    from plsearch.search.registries import get_pruner

    entry = get_pruner(name)
    require(callable(entry), f"pruner {name}: the registered entry {entry!r} is not callable as factory(space)")
    options = _options(name, entry)
    built = 0
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        for space in _spaces(name, options):
            try:
                entry(space)
            except ValueError:
                continue  # this pruner cannot prune that kind of study (median: one objective only)
            built += 1
            _run(name, entry, space)
    finally:
        optuna.logging.set_verbosity(verbosity)
    require(built, f"pruner {name}: factory(space) refused both a multi- and a single-objective space")
