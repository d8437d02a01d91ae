"""One learning-rate rule for search trials, preset references and confirmation runs.

Architectures differ in the learning rate they train at (PL-Net's zero-initialised BSC and deep
recurrence against a plain U-Net), so no run is compared at one fixed rate. A search samples
``train.lr`` from a log-range axis like any other parameter; a run that is not sampled (a preset
reference, a confirmation run) tries ``lr_grid(low, high)`` of the same range at the same fidelity
and keeps the rate with the best validation Dice (``choose_lr``). Only the validation split is
used, so the test split stays untouched for confirmation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.config.schema import RunConfig

LR_PATH = "train.lr"
DEFAULT_POINTS = 3


def lr_grid(low: float, high: float, n: int = DEFAULT_POINTS) -> tuple[float, ...]:
    """``n`` rates spread evenly on a log scale over ``[low, high]``: the centres of ``n`` equal bins
    (``n = 3`` over 1e-3..1e-2: 1.5e-3, 3.2e-3, 6.8e-3), so no candidate sits on a range's edge."""
    if not (0 < low < high) or n < 1:
        raise ValueError(f"lr range low={low}, high={high} needs 0 < low < high, and n={n} >= 1")
    a, b = math.log(low), math.log(high)
    return tuple(float(f"{math.exp(a + (b - a) * (i + 0.5) / n):.3g}") for i in range(n))


def lr_range(space: Any) -> tuple[float, float] | None:
    """The ``train.lr`` axis of a ``SearchSpace`` as ``(low, high)``, or None when the space fixes it."""
    for axis in getattr(space, "axes", ()):
        if axis.path == LR_PATH and axis.kind == "float":
            return float(axis.low), float(axis.high)
    return None


def lr_candidates(space: Any, n: int = DEFAULT_POINTS) -> tuple[float, ...]:
    """Rates a non-sampled run of ``space`` tries: ``lr_grid`` of its ``train.lr`` axis, else ()
    (the run keeps the fixed rate of its config)."""
    rng = lr_range(space)
    return lr_grid(*rng, n) if rng else ()


@dataclass(frozen=True)
class LrChoice:
    """The chosen ``lr``, its validation Dice, and every tried rate's Dice (None: it failed)."""

    lr: float
    val_dice: float
    tried: Mapping[float, float | None]
    result: Any = None  # what ``train`` returned for the chosen rate


def rate_rank(lr: float, dice: float) -> tuple[float, float]:
    """How the rule orders trained rates: higher validation Dice first, ties to the lower rate (the
    largest key wins). ``choose_lr`` and the fidelity check's presets both pick by it."""
    return (dice, -lr)


def choose_lr(cfg: RunConfig, candidates: Sequence[float], train: Callable[[RunConfig], Mapping[str, Any]]) -> LrChoice:
    """Train ``cfg`` at each rate (``train(cfg) -> metrics with 'val_dice'``), keep the best on validation.

    An exception from ``train`` (a non-finite loss at a high rate, say) marks that rate failed and the
    rule moves on; if every rate fails, the last exception propagates. Ties keep the lower rate.
    With no candidates, ``cfg`` trains once at its own rate.
    """
    rates = list(candidates) or [cfg.train.lr]
    tried: dict[float, float | None] = {}
    best: tuple[float, float, Any] | None = None
    error: Exception | None = None
    for lr in rates:
        try:
            result = train(replace(cfg, train=replace(cfg.train, lr=lr)))
        except (RuntimeError, ValueError, MemoryError) as e:  # NonFiniteLossError is a RuntimeError
            tried[lr], error = None, e
            continue
        dice = float(result["val_dice"])
        tried[lr] = dice
        if best is None or rate_rank(lr, dice) > rate_rank(best[0], best[1]):
            best = (lr, dice, result)
    if best is None:
        assert error is not None
        raise error
    return LrChoice(best[0], best[1], tried, best[2])
