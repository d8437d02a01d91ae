"""Shared test helpers: where the real data sets live, and how their absence is reported.

Tests that need ``../shared/data`` skip with a reason when it is absent; with
``PLSEARCH_REQUIRE_DATA=1`` (set by ``.ci/run``) the absence is a failure instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("PLSEARCH_DATA_DIR", REPO.parent / "shared" / "data"))


def shared_data(name: str) -> Path:
    """Path of ``../shared/data/<name>``; skip (or fail under PLSEARCH_REQUIRE_DATA=1) if absent."""
    path = data_root() / name
    if not (path / "images").is_dir():
        msg = f"data set {name!r} not found at {path} (set PLSEARCH_DATA_DIR to the folder holding it)"
        if os.environ.get("PLSEARCH_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; PLSEARCH_REQUIRE_DATA=1 makes this a failure")
        pytest.skip(msg)
    return path


def shared_volume_data(name: str) -> Path:
    """Path of a ``../shared/data/<name>`` in the MSD layout (``imagesTr/``); skips like ``shared_data``."""
    path = data_root() / name
    if not (path / "imagesTr").is_dir():
        msg = f"volume data set {name!r} not found at {path} (set PLSEARCH_DATA_DIR to the folder holding it)"
        if os.environ.get("PLSEARCH_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; PLSEARCH_REQUIRE_DATA=1 makes this a failure")
        pytest.skip(msg)
    return path


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run tiny convs: one thread is faster than two and immune to a busy second core.
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    # Tests never write into the user's ~/.cache/plsearch; one shared cache per test session.
    if "PLSEARCH_CACHE_DIR" not in os.environ:
        os.environ["PLSEARCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("plsearch-cache"))
    yield


# A tiny multi-worker search space whose second objective sleeps PLSEARCH_TEST_SLOW seconds a trial (so a
# test can act while trials run): test_scale and test_safety_storage_faults share it.
SLOW_METRIC = """
import os, time
from plsearch.search import register_metric

@register_metric("slow", "minimize")
def slow(ctx):
    time.sleep(float(os.environ.get("PLSEARCH_TEST_SLOW", "0")))
    return 0.0
"""
SPACE = """imports: [slow_metric.py]
objectives: [val_dice, {metric: slow, direction: minimize}]
sampler: random
pruning: false
references: []
model.ocs: {low: 0.5, high: 1.0}
model.steps: 1
model.stages: 1
model.depth: 2
model.stem: 1
fidelity: {model.base_width: 4, data.image_size: 16, data.synthetic_count: 8, train.epochs: 1, train.batch_size: 4,
           train.max_steps_per_epoch: 1, train.eval_batch_size: 8, train.augment: false, train.patience: 0}
"""


def slow_space(tmp_path: Path, name: str = "scale") -> str:
    """Write the slow-metric plug-in and the space into ``tmp_path``; return the space's path."""
    (tmp_path / "slow_metric.py").write_text(SLOW_METRIC)
    (tmp_path / f"{name}.yaml").write_text(SPACE)
    return str(tmp_path / f"{name}.yaml")
