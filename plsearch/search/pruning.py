"""Pruning: Optuna's own pruners for single-objective studies, a dominance pruner for multi-objective ones.

Optuna cannot prune multi-objective studies (``trial.report`` raises). ``DominancePruner`` stops a
trial whose validation Dice after epoch ``e`` is dominated: some earlier trial of no larger size
(params, or MACs when MACs is an objective) had a Dice better by more than ``min_delta`` after the
same epoch ``e``. Curves live in each trial's user attr ``val_dice_curve`` (entry ``e - 1`` holds
the Dice after epoch ``e``), so the rule needs only storage and works across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from optuna.trial import FrozenTrial

    from plsearch.search.space import SearchSpace

CURVE_ATTR = "val_dice_curve"


@dataclass(frozen=True)
class Curve:
    """One trial's validation Dice after each epoch, and its size."""

    number: int
    size: tuple[float, ...]
    dice: tuple[float, ...]
    complete: bool


def size_keys(space: "SearchSpace") -> tuple[str, ...]:
    """What a trial's size is: the size objectives of the study (params, macs, latency_ms), else params."""
    keys = tuple(k for k in space.metric_names if k in ("params", "macs", "latency_ms"))
    return keys or ("params",)


def curves_from_trials(trials: Iterable["FrozenTrial"], keys: Sequence[str] = ("params",)) -> list[Curve]:
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

    def dominated_by(self, epoch: int, dice: float, size: float | Sequence[float],
                     others: Sequence[Curve]) -> Curve | None:
        """The trial that dominates ``(size, dice)`` after ``epoch`` (1-based), or None (keep going).

        ``size`` holds one value per size measure, in the order of ``Curve.size``; smaller is better.
        """
        size = (float(size),) if isinstance(size, (int, float)) else tuple(size)
        if epoch <= self.n_warmup_epochs or sum(c.complete for c in others) < self.n_startup_trials:
            return None
        best = None
        for c in others:
            if all(a <= b for a, b in zip(c.size, size)) and len(c.dice) >= epoch and c.dice[epoch - 1] > dice + self.min_delta:
                if best is None or c.dice[epoch - 1] > best.dice[epoch - 1]:
                    best = c
        return best


def make_epoch_callback(trial: Any, space: "SearchSpace", prof: Mapping[str, Any],
                        epochs: int) -> Callable[[int, dict], None]:
    """``fit``'s ``on_epoch_end``: records the Dice curve and raises ``optuna.TrialPruned`` when pruned.

    Single-objective studies report to Optuna (``trial.report`` / ``should_prune``, e.g. MedianPruner);
    multi-objective ones ask ``DominancePruner``.
    """
    import optuna

    curve: list[float] = []
    multi = len(space.objectives) > 1
    keys = size_keys(space)
    size = tuple(float(prof[k]) for k in keys)
    single_metric = space.objectives[0].name if not multi else None
    pruner = DominancePruner(space.pruning.n_startup_trials, space.pruning.n_warmup_epochs, space.pruning.min_delta)

    def on_epoch_end(epoch: int, row: dict) -> None:
        curve.append(float(row["val_dice"]))
        trial.set_user_attr(CURVE_ATTR, list(curve))
        if not space.pruning.enabled or epoch >= epochs:  # after the last epoch there is nothing to save
            return
        if not multi:
            if single_metric in ("val_dice", "val_iou"):
                trial.report(float(row[single_metric]), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: {single_metric} {row[single_metric]:.4f} below the median")
            return
        from optuna.trial import TrialState

        others = curves_from_trials(
            trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)), keys)
        dom = pruner.dominated_by(epoch, curve[-1], size, others)
        if dom is not None:
            sizes = ", ".join(f"{k} {a:.3g} <= {b:.3g}" for k, a, b in zip(keys, dom.size, size))
            raise optuna.TrialPruned(
                f"epoch {epoch}: val Dice {curve[-1]:.4f} < {dom.dice[epoch - 1]:.4f} of trial {dom.number} ({sizes})")

    return on_epoch_end


def study_pruner(space: "SearchSpace") -> Any:
    """The Optuna pruner for the study: MedianPruner for one objective, NopPruner otherwise."""
    import optuna

    if len(space.objectives) == 1 and space.pruning.enabled:
        return optuna.pruners.MedianPruner(n_startup_trials=space.pruning.n_startup_trials,
                                           n_warmup_steps=space.pruning.n_warmup_epochs)
    return optuna.pruners.NopPruner()
