"""Pruning by name (``pruning: {name: asha | dominance | median}``), chosen per study from the space.

Optuna cannot prune multi-objective studies (``trial.report`` raises), so plsearch prunes them
itself from what every trial writes to storage: ``asha`` is multi-objective successive halving
(``AshaPruner``, ``plsearch.search.asha``); ``dominance`` (``DominancePruner``) stops a
trial whose validation Dice after epoch ``e`` is dominated: some earlier trial of no larger size
(params, or MACs when MACs is an objective) had a Dice better by more than ``min_delta`` after the
same epoch ``e``. Curves live in each trial's user attr ``val_dice_curve`` (entry ``e - 1`` holds
the Dice after epoch ``e``), so the rule needs only storage and works across processes;
``median`` is Optuna's MedianPruner for single-objective studies. A space without ``name`` keeps
the old choice (dominance for several objectives, median for one). New pruners: ``register_pruner``.

Each pruner declares its options (the space's ``pruning:`` keys besides ``enabled`` and ``name``) as a
frozen ``Options`` dataclass on its class: asha ``min_epochs``, ``eta``; dominance ``n_startup_trials``,
``n_warmup_epochs``, ``min_delta``; median ``n_startup_trials``, ``n_warmup_epochs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plsearch.search.registries import (  # noqa: F401  (re-exported)
    SIZE_METRICS,
    Pruner,
    default_pruner,
    get_pruner,
    list_pruners,
    pruner_options_of,
    register_pruner,
)

if TYPE_CHECKING:  # pragma: no cover
    from optuna.trial import FrozenTrial

    from plsearch.search.asha import RungResult
    from plsearch.search.space import SearchSpace

CURVE_ATTR = "val_dice_curve"


@dataclass(frozen=True)
class Curve:
    """One trial's validation Dice after each epoch, and its size."""

    number: int
    size: tuple[float, ...]
    dice: tuple[float, ...]
    complete: bool


def size_keys(space: SearchSpace) -> tuple[str, ...]:
    """What a trial's size is: the size objectives of the study (params, macs, latency_ms), else params."""
    keys = tuple(k for k in space.metric_names if k in SIZE_METRICS)
    return keys or ("params",)


def curves_from_trials(trials: Iterable[FrozenTrial], keys: Sequence[str] = ("params",)) -> list[Curve]:
    """Curves of finished (complete or pruned), feasible trials that recorded one."""
    from optuna.trial import TrialState

    out = []
    for t in trials:
        curve, prof = t.user_attrs.get(CURVE_ATTR), t.user_attrs.get("profile") or {}
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or not curve:
            continue
        if any(prof.get(k) is None for k in keys):
            continue
        if t.user_attrs.get("feasible") is False or "duplicate_of" in t.user_attrs:
            continue
        size = tuple(float(prof[k]) for k in keys)
        out.append(Curve(t.number, size, tuple(curve), t.state == TrialState.COMPLETE))
    return out


@dataclass(frozen=True)
class DominancePruner:
    """Prune when a no-larger finished trial was strictly better at the same epoch.

    Args:
        n_startup_trials: never prune before this many trials completed training.
        n_warmup_epochs: never prune at or before this epoch.
        min_delta: the other trial must be better by more than this (Dice points, 0..1).
    """

    n_startup_trials: int = 3
    n_warmup_epochs: int = 1
    min_delta: float = 0.0

    def dominated_by(
        self, epoch: int, dice: float, size: float | Sequence[float], others: Sequence[Curve]
    ) -> Curve | None:
        """The trial that dominates ``(size, dice)`` after ``epoch`` (1-based), or None (keep going).

        ``size`` holds one value per size measure, in the order of ``Curve.size``; smaller is better.
        """
        size = (float(size),) if isinstance(size, (int, float)) else tuple(size)
        if epoch <= self.n_warmup_epochs or sum(c.complete for c in others) < self.n_startup_trials:
            return None
        best = None
        for c in others:
            beats = (
                all(a <= b for a, b in zip(c.size, size))
                and len(c.dice) >= epoch
                and c.dice[epoch - 1] > dice + self.min_delta
            )
            if beats and (best is None or c.dice[epoch - 1] > best.dice[epoch - 1]):
                best = c
        return best


# ----------------------------------------------------------------------------- pruners by name


@dataclass(frozen=True)
class EpochState:
    """What an epoch-end pruner sees: the live Optuna ``trial``, the epoch just finished (1-based),
    the planned ``epochs``, the Dice curve so far, the trial's exact sizes (``keys``) and the trivial
    predictors' val Dice (``floor``, None when unknown)."""

    trial: Any
    epoch: int
    epochs: int
    curve: tuple[float, ...]
    size: tuple[float, ...]
    keys: tuple[str, ...]
    floor: float | None = None
    row: Mapping[str, Any] | None = None  # fit's epoch row (val_dice, val_iou, ...)
    start: bool = False  # one of the space's start configs: ranked and recorded, never stopped


# One registry shape (plsearch.search.registries): ``@register_pruner("name")`` on ``factory(space) -> pruner``
# whose ``check(state: EpochState) -> str | None`` gives a reason to stop (or None); usable as
# ``pruning: {name: ...}`` in a space file, with the options its ``Options`` declares. The built-ins below
# register when this module is imported.


@dataclass(frozen=True)
class WarmupOptions:
    """Options of the pruners that compare curves: ``n_startup_trials`` (prune none before this many trials
    completed training) and ``n_warmup_epochs`` (prune none at or before this epoch)."""

    n_startup_trials: int = field(default=3, metadata={"min": 0})
    n_warmup_epochs: int = field(default=1, metadata={"min": 0})


@dataclass(frozen=True)
class DominanceOptions(WarmupOptions):
    """``min_delta``: the dominating trial's Dice must be better by more than this (0..1)."""

    min_delta: float = 0.0


@dataclass(frozen=True)
class AshaOptions:
    """``min_epochs``: the first rung; ``eta``: the reduction factor (the top ``1/eta`` go on at each rung)."""

    min_epochs: int = field(default=1, metadata={"min": 1})
    eta: int = field(default=3, metadata={"min": 2})


def pruner_name(space: SearchSpace) -> str | None:
    """The pruner a study uses: the space's ``pruning.name``, else dominance (several objectives) or
    median (one); None when pruning is off."""
    p = space.pruning
    if not p.enabled:
        return None
    name = getattr(p, "name", None)
    return name or default_pruner(len(space.objectives))


@register_pruner("dominance")
class _Dominance:
    """``DominancePruner`` over the study's finished trials (see the module docstring)."""

    Options = DominanceOptions

    def __init__(self, space: SearchSpace) -> None:
        o = pruner_options_of(type(self), space)
        self.rule = DominancePruner(o.n_startup_trials, o.n_warmup_epochs, o.min_delta)

    def check(self, s: EpochState) -> str | None:
        from optuna.trial import TrialState

        others = curves_from_trials(
            s.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)), s.keys
        )
        dom = self.rule.dominated_by(s.epoch, s.curve[-1], s.size, others)
        if dom is None:
            return None
        sizes = ", ".join(f"{k} {a:.3g} <= {b:.3g}" for k, a, b in zip(s.keys, dom.size, s.size))
        return (
            f"epoch {s.epoch}: val Dice {s.curve[-1]:.4f} < {dom.dice[s.epoch - 1]:.4f} of trial {dom.number} ({sizes})"
        )


@register_pruner("median")
class _Median:
    """Optuna's pruner of the study (MedianPruner, see ``study_pruner``): single-objective studies only."""

    Options = WarmupOptions

    def __init__(self, space: SearchSpace) -> None:
        if len(space.objectives) != 1:
            raise ValueError(
                "pruning name 'median' needs a single-objective study (Optuna cannot prune "
                "multi-objective ones); use asha or dominance"
            )
        self.metric = space.objectives[0].name

    def check(self, s: EpochState) -> str | None:
        if self.metric not in ("val_dice", "val_iou"):
            return None
        value = float((s.row or {}).get(self.metric, s.curve[-1]))
        s.trial.report(value, s.epoch)
        if s.trial.should_prune():
            return f"epoch {s.epoch}: {self.metric} {value:.4f} below the median"
        return None


@register_pruner("asha")
class AshaPruner:
    """Multi-objective successive halving (``plsearch.search.asha``) over the study's storage.

    Protocol at a rung: first write this trial's rung result (user attr ``asha_rungs``), then read
    every other trial's result at the rung, decide, and record the decision. Of two trials deciding
    at the same rung at the same time, at least the one that reads last sees the other, with every
    storage (each write lands before its writer reads). A trial's rung result stays a peer at that rung
    whatever the trial's later fate (degenerate, non-finite loss: ``feasible`` False at the end), so
    decisions at a rung never change with what happened after it; only FAIL trials (killed, re-queued:
    their parameters run again) and duplicates (user attr ``duplicate_of``) are not peers.
    """

    Options = AshaOptions

    def __init__(self, space: SearchSpace) -> None:
        opts = pruner_options_of(type(self), space)
        self.min_epochs, self.eta = int(opts.min_epochs), int(opts.eta)
        self.size_objectives = tuple(o.name for o in space.objectives if o.name in SIZE_METRICS)

    def peers(self, trial: Any, epoch: int, keys: Sequence[str]) -> list[RungResult]:
        """Every other trial's result at rung ``epoch`` (FAIL trials and duplicates left out)."""
        from optuna.trial import TrialState

        from plsearch.search.asha import RUNG_ATTR, RungResult

        out = []
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for t in trial.study.get_trials(deepcopy=False, states=states):
            entry = (t.user_attrs.get(RUNG_ATTR) or {}).get(str(epoch))
            prof = t.user_attrs.get("profile") or {}
            # no test of ``feasible``: that is the end of the run, and the rung result came before it
            if t.number == trial.number or not entry or "duplicate_of" in t.user_attrs:
                continue
            if any(prof.get(k) is None for k in keys):
                continue
            out.append(RungResult(t.number, float(entry["val_dice"]), tuple(float(prof[k]) for k in keys)))
        return out

    def check(self, s: EpochState) -> str | None:
        from plsearch.search.asha import RUNG_ATTR, RungResult, decide, rung_epochs

        if s.epoch not in rung_epochs(self.min_epochs, self.eta, s.epochs):
            return None
        keys = self.size_objectives
        size = tuple(v for k, v in zip(s.keys, s.size) if k in keys) if keys else ()
        keys = tuple(k for k in s.keys if k in keys)
        rungs = dict(s.trial.user_attrs.get(RUNG_ATTR) or {})
        rungs[str(s.epoch)] = {"val_dice": s.curve[-1]}
        s.trial.set_user_attr(RUNG_ATTR, rungs)  # write first, then read: see the class docstring
        me = RungResult(s.trial.number, s.curve[-1], size)
        d = decide(me, self.peers(s.trial, s.epoch, keys), self.eta, s.floor)
        rungs[str(s.epoch)] = {
            "val_dice": s.curve[-1],
            "peers": list(d.peers),
            "rank": d.rank,
            "keep": d.keep,
            "promoted": d.promoted or s.start,  # a start config goes on whatever its rank
            **({"start": True} if s.start else {}),
        }
        s.trial.set_user_attr(RUNG_ATTR, rungs)
        if d.promoted or s.start:
            return None
        return (
            f"epoch {s.epoch}: rank {d.rank + 1} of {len(d.peers) + 1} at the rung (top {d.keep} go on), "
            f"val Dice {s.curve[-1]:.4f}"
        )


def make_epoch_callback(
    trial: Any,
    space: SearchSpace,
    prof: Mapping[str, Any],
    epochs: int,
    floor: float | None = None,
    start: bool = False,
) -> Callable[[int, dict], None]:
    """``fit``'s ``on_epoch_end``: records the Dice curve and raises ``optuna.TrialPruned`` when the
    space's pruner (``pruner_name``) says stop. ``floor``: the trivial predictors' val Dice; ``start``:
    the trial is one of the space's start configs (``plsearch.search.start``), which run to the end."""
    import optuna

    curve: list[float] = []
    keys = size_keys(space)
    size = tuple(float(prof[k]) for k in keys)
    name = pruner_name(space)
    pruner: Pruner | None = get_pruner(name)(space) if name else None

    def on_epoch_end(epoch: int, row: dict) -> None:
        curve.append(float(row["val_dice"]))
        trial.set_user_attr(CURVE_ATTR, list(curve))
        if pruner is None or epoch >= epochs:  # after the last epoch there is nothing to save
            return
        reason = pruner.check(EpochState(trial, epoch, epochs, tuple(curve), size, keys, floor, row, start))
        if reason is not None and not start:
            raise optuna.TrialPruned(reason)

    return on_epoch_end


def study_pruner(space: SearchSpace) -> Any:
    """The Optuna pruner for the study: MedianPruner when the study prunes by median, NopPruner otherwise."""
    import optuna

    if pruner_name(space) == "median" and len(space.objectives) == 1:
        o = pruner_options_of(_Median, space)
        return optuna.pruners.MedianPruner(n_startup_trials=o.n_startup_trials, n_warmup_steps=o.n_warmup_epochs)
    return optuna.pruners.NopPruner()
