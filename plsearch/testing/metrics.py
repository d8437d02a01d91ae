"""The metric contract: a registered objective has a direction and returns one finite, repeatable float.

Custom metrics are called after training with a ``MetricContext``; the check builds a tiny one
(a two-level network, a few synthetic images, untrained weights) and calls the metric twice.
"""

from __future__ import annotations

from typing import Any

from plsearch.testing.common import require


def tiny_context() -> Any:
    """A ``MetricContext`` with a tiny model, synthetic splits and no training: for contract checks."""
    import torch

    from plsearch.config.gate import resolve
    from plsearch.data.dataset import load_splits
    from plsearch.nn.model import PLNet
    from plsearch.search.registries import MetricContext

    cfg = resolve(
        None,
        {
            "model.base_width": 2,
            "model.depth": 2,
            "model.stages": 1,
            "model.stem": 1,
            "data.image_size": 16,
            "data.synthetic_count": 8,
            "data.cache": False,
        },
    )
    splits = load_splits(cfg.data, num_classes=cfg.model.num_classes)
    cfg = resolve(cfg, {}, data=splits)
    torch.manual_seed(0)
    model = PLNet.from_config(cfg.model).eval()
    return MetricContext(
        model=model,
        config=cfg,
        splits=splits,
        fit=None,
        metrics={"val_dice": 0.0, "val_iou": 0.0},
        profile={"params": 0.0, "macs": 0.0},
    )


def check_metric(name: str, ctx: Any = None) -> None:
    """Check a registered (or ``module:function``) metric; raises ``ContractError``."""
    import math

    from plsearch.search.registries import get_metric

    metric = get_metric(name)
    require(
        metric.direction in ("maximize", "minimize", None),
        f"metric {name}: direction {metric.direction!r} is not maximize or minimize",
    )
    if metric.fn is None:
        return  # a built-in: computed by the objective itself
    ctx = ctx or tiny_context()
    first, second = metric.fn(ctx), metric.fn(ctx)
    require(
        isinstance(first, (int, float)) and not isinstance(first, bool),
        f"metric {name}: returned {type(first).__name__}, expected a float",
    )
    require(math.isfinite(float(first)), f"metric {name}: returned {first!r}, expected a finite number")
    require(float(first) == float(second), f"metric {name}: two calls on one context gave {first} and {second}")
