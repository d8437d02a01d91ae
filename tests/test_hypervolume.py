"""plsearch.plots.study.hypervolume: exact, on hand-computed fronts (no private Optuna API)."""

from __future__ import annotations

import numpy as np
import pytest

from plsearch.plots.study import hypervolume


@pytest.mark.parametrize(
    "points, ref, want",
    [
        ([[0.5, 0.5]], [1.0, 1.0], 0.25),
        ([[0.0, 0.5], [0.5, 0.0]], [1.0, 1.0], 0.75),
        ([[0.0, 0.5], [0.5, 0.0], [0.6, 0.6]], [1.0, 1.0], 0.75),  # a dominated point adds nothing
        ([[2.0, 0.0]], [1.0, 1.0], 0.0),  # beyond the reference point
        ([[0.5, 0.5, 0.5]], [1.0, 1.0, 1.0], 0.125),
        ([[0.0, 0.0, 0.5], [0.5, 0.5, 0.0]], [1.0, 1.0, 1.0], 0.5 + 0.25 * 0.5),
    ],
)
def test_hypervolume(points, ref, want):
    assert hypervolume(np.array(points), np.array(ref)) == pytest.approx(want)
