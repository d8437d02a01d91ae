"""The preset contract: a named configuration round-trips as data and builds a model that matches it.

The config survives dict and YAML round trips; the built ``PLNet`` holds exactly the parameters
``estimate`` predicts; training mode returns one logits map per stage, eval mode the fused map,
both at the input's size; every parameter gets a gradient.
"""

from __future__ import annotations

from typing import Any

from plsearch.testing.common import require


def check_preset(name: str, *, base_width: int = 4, size: int | None = None, **overrides: Any) -> None:
    """Check preset ``name`` (at a tiny ``base_width``); raises ``ContractError``."""
    import torch
    import yaml

    from plsearch.config.presets import preset_config
    from plsearch.config.schema import ModelConfig
    from plsearch.graph.wiring import estimate
    from plsearch.nn.model import PLNet

    cfg = preset_config(name, base_width=base_width, **overrides)
    require(ModelConfig.from_dict(cfg.to_dict()) == cfg, f"preset {name}: config does not round-trip through a dict")
    require(
        ModelConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg,
        f"preset {name}: config does not round-trip through YAML",
    )
    torch.manual_seed(0)
    model = PLNet.from_config(cfg)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    s = size or cfg.total_stride()
    est = estimate(cfg, s)
    require(est.params == n, f"preset {name}: estimate says {est.params} parameters, the model holds {n}")
    x = torch.randn(2, cfg.in_channels, *([s] * cfg.spatial_dims))
    outs = model.train()(x)
    want = (2, cfg.num_classes, *([s] * cfg.spatial_dims))
    require(
        isinstance(outs, list) and len(outs) == cfg.stages,
        f"preset {name}: training forward returns "
        f"{type(outs).__name__} of {len(outs) if isinstance(outs, list) else 1}, expected {cfg.stages} stage maps",
    )
    require(
        all(tuple(o.shape) == want for o in outs),
        f"preset {name}: stage logits {[tuple(o.shape) for o in outs]}, expected {want}",
    )
    sum(o.float().mean() for o in outs).backward()
    missing = [k for k, p in model.named_parameters() if p.requires_grad and p.grad is None]
    require(not missing, f"preset {name}: parameters without a gradient: {missing[:5]}")
    with torch.no_grad():
        fused = model.eval()(x)
    require(
        tuple(fused.shape) == want and bool(torch.isfinite(fused).all()),
        f"preset {name}: eval output {tuple(fused.shape)} (finite: {bool(torch.isfinite(fused).all())}), "
        f"expected {want}",
    )
