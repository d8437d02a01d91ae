"""Multi-objective asynchronous successive halving (MOASHA, Schmucker et al. 2021), stop-or-go form.

Rungs sit at ``min_epochs * eta**k`` epochs, up to ``epochs / eta`` (the top rung is the full run). When a
trial finishes a rung's epoch it goes on only if it ranks in the top ``n // eta`` of the ``n`` trials that
reached that rung so far, itself included (all go on while ``n < eta``). Ranking is non-dominated sorting over
the study's objectives with the accuracy taken at the rung (sizes are exact before training), ties inside a
front broken by crowding distance (larger first), then by Dice, then by trial number. A trial whose rung Dice
is no better than the trivial predictors' (``floor``) ranks below every trial that beats it.

Everything here is pure: the storage protocol (write own rung result, then read the peers) lives
in ``plsearch.search.pruning.AshaPruner``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

RUNG_ATTR = "asha_rungs"  # user attr: {"<epoch>": {"val_dice", "peers", "rank", "keep", "promoted"}}


@dataclass(frozen=True)
class RungResult:
    """One trial at one rung: its Dice after the rung's epoch and its sizes (smaller is better)."""

    number: int
    dice: float
    size: tuple[float, ...] = ()


def rung_epochs(min_epochs: int, eta: int, epochs: int) -> tuple[int, ...]:
    """Epochs at which decisions are made: ``min_epochs * eta**k`` up to ``epochs / eta`` (ASHA's rungs
    below the top one, which is the full run: a decision at epoch 9 of 10 would save one epoch)."""
    if min_epochs < 1 or eta < 2:
        raise ValueError(f"min_epochs={min_epochs} must be >= 1 and eta={eta} >= 2")
    out, r = [], min_epochs
    while r * eta <= epochs:
        out.append(r)
        r *= eta
    return tuple(out)


def nondominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of ``points`` (all minimised) split into successive non-dominated fronts."""
    n = len(points)

    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    dominated_by = [sum(dominates(points[j], points[i]) for j in range(n) if j != i) for i in range(n)]
    beats = [[j for j in range(n) if j != i and dominates(points[i], points[j])] for i in range(n)]
    fronts, current = [], [i for i in range(n) if dominated_by[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in beats[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return fronts


def crowding(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each index in ``front`` (extremes: inf)."""
    dist = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for m in range(len(points[front[0]])):
        order = sorted(front, key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:]):
            dist[i] += (points[b][m] - points[a][m]) / (hi - lo)
    return dist


def ranking(results: Sequence[RungResult], floor: float | None = None) -> list[int]:
    """Trial numbers of ``results``, best first (see the module docstring)."""
    groups = (
        [r for r in results if floor is None or r.dice > floor],
        [r for r in results if floor is not None and r.dice <= floor],
    )
    order: list[int] = []
    for group in groups:
        pts = [(-r.dice, *r.size) for r in group]
        for front in nondominated_fronts(pts):
            dist = crowding(pts, front)
            front = sorted(front, key=lambda i: (-dist[i], -group[i].dice, group[i].number))
            order.extend(group[i].number for i in front)
    return order


def n_promoted(n: int, eta: int) -> int:
    """How many of ``n`` trials at a rung go on: the top ``1/eta``, at least one; all of them while
    fewer than ``eta`` reached the rung (a rung of one or two trials ranks nothing: stopping there
    would stop early trials on the luck of who came first)."""
    return n if n < eta else n // eta


@dataclass(frozen=True)
class Decision:
    promoted: bool
    rank: int  # 0-based position among the trials at the rung
    keep: int  # how many go on
    peers: tuple[int, ...]  # the other trials it was ranked against


def decide(me: RungResult, peers: Sequence[RungResult], eta: int, floor: float | None = None) -> Decision:
    """Whether ``me`` goes on past this rung, given the ``peers`` that reached it (``me`` excluded)."""
    others = [p for p in peers if p.number != me.number]
    order = ranking([me, *others], floor)
    keep = n_promoted(len(order), eta)
    rank = order.index(me.number)
    return Decision(rank < keep, rank, keep, tuple(sorted(p.number for p in others)))
