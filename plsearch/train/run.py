"""One way to run a config: a resolved ``RunConfig`` -> seeded model -> ``fit`` -> the trained model.

``run_config`` is the only caller of ``plsearch.train.fit.fit`` (``tests/test_house.py`` holds that): the train
CLI, a search's trials and preset references (``plsearch.search.objective.train_and_score``) and the run queue
under confirm, fidelity and the truth table (``plsearch.studies.runs.run_job``) all train through it, so the
seed, the model and the data reach ``fit`` the same way everywhere. What each caller does afterwards (test
metrics, custom metrics, curves) stays with the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from plsearch.config.schema import RunConfig
from plsearch.train.fit import FitResult

__all__ = ["RunResult", "build_model", "run_config"]


@dataclass(frozen=True)
class RunResult:
    """What ``run_config`` returns: ``fit``'s result, the trained model (holding the weights of the best
    validation epoch, as ``fit`` leaves it) and the splits it trained on."""

    fit_result: FitResult
    model: nn.Module
    splits: Mapping[str, Any]


def build_model(cfg: RunConfig) -> nn.Module:
    """``cfg.model`` built after ``torch.manual_seed(cfg.train.seed)``: the initial weights belong to the run's seed."""
    from plsearch.nn.model import PLNet

    torch.manual_seed(cfg.train.seed)
    return PLNet.from_config(cfg.model)


def run_config(
    cfg: RunConfig,
    splits: Mapping[str, Any] | None = None,
    *,
    model: nn.Module | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[int, dict], Any] | None = None,
    progress: bool = False,
) -> RunResult:
    """Train ``cfg`` (a resolved config: ``plsearch.config.gate.resolve``) and return the trained model.

    Args:
        splits: ``{"train", "val", ...}`` already loaded (a search's cache, or the CLI's splits that set
            ``model.in_channels``); None loads ``cfg.data`` (``plsearch.data.dataset.load_splits``).
        model: the network ``build_model(cfg)`` made, when the caller needs it before training (to print its
            size, or in ``on_epoch_end``); None builds it here, the same way.
        out_dir, resume, on_epoch_end, progress: as ``plsearch.train.fit.fit`` takes them (``cfg`` is stored in
            the checkpoints as the run's config).

    Raises:
        NonFiniteLossError: and whatever ``on_epoch_end`` raises (``optuna.TrialPruned``), from ``fit``.
    """
    from plsearch.train.fit import fit  # looked up at call time: tests stand in for the training loop

    if splits is None:
        from plsearch.data.dataset import load_splits

        splits = load_splits(cfg.data, num_classes=cfg.model.num_classes)
    if model is None:
        model = build_model(cfg)
    result = fit(
        model,
        splits["train"],
        splits["val"],
        cfg.train,
        num_classes=cfg.model.num_classes,
        out_dir=out_dir,
        run_config=cfg,
        on_epoch_end=on_epoch_end,
        resume=resume,
        progress=progress,
    )
    return RunResult(result, model, splits)
