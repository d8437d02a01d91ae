"""Budgets relative to a preset: ``constraints: {macs: {at_most: plnet}}`` in a space file.

An absolute budget means nothing once the fidelity changes (a MACs figure at 32 px and width 4 is
over every net at 64 px), so a budget may name a preset instead: the preset's size at the space's
fidelity (its width scaled like the references', ``plsearch.search.references``), times ``times``.
Resolved when the space is parsed, analytically (``plsearch.graph.wiring.estimate``), no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plsearch.config.schema import ModelConfig
from plsearch.search.registries import COUNTED_SIZES

PRESET_KEYS = {"at_most", "times"}


def preset_at_fidelity(name: str, fixed: Mapping[str, Any]) -> ModelConfig:
    """Preset ``name`` as the references train it at a space's fidelity (``fixed``: ``{"model.base_width": 4, ...}``):
    its own shape, width ``preset base_width * space base_width / 32``, the space's channels and classes."""
    from plsearch.config.presets import preset_config

    default = ModelConfig()
    width = float(fixed.get("model.base_width", default.base_width))
    preset = preset_config(name)
    return preset_config(
        name,
        base_width=max(1, round(preset.base_width * width / default.base_width)),
        in_channels=int(fixed.get("model.in_channels", default.in_channels)),
        num_classes=int(fixed.get("model.num_classes", default.num_classes)),
        spatial_dims=int(fixed.get("model.spatial_dims", default.spatial_dims)),
    )


def resolve_budget(metric: str, spec: Mapping[str, Any], fixed: Mapping[str, Any]) -> tuple[float, str]:
    """``{at_most: PRESET, times: x}`` -> (the bound, a line saying how it was computed).

    Raises:
        ValueError: unknown keys or preset, a non-positive ``times``, or a metric that is not analytic.
    """
    from plsearch.config.presets import list_models
    from plsearch.graph.wiring import estimate

    bad = sorted(set(map(str, spec)) - PRESET_KEYS)
    if bad or "at_most" not in spec:
        raise ValueError(
            f"constraints.{metric}={dict(spec)!r}: give a number, or {{at_most: PRESET}} with an "
            f"optional times: X (unknown keys: {', '.join(bad) or 'none'})"
        )
    name, times = spec["at_most"], spec.get("times", 1.0)
    if name not in list_models():
        raise ValueError(f"constraints.{metric}.at_most={name!r} is not a preset; choose one of {list_models()}")
    if isinstance(times, bool) or not isinstance(times, (int, float)) or times <= 0:
        raise ValueError(f"constraints.{metric}.times={times!r} must be a positive number")
    if metric not in COUNTED_SIZES:
        raise ValueError(f"constraints.{metric}: a preset-relative bound needs an analytic size (params or macs)")
    size = int(fixed.get("data.image_size", 224))
    est = estimate(preset_at_fidelity(name, fixed), size)
    value = float(getattr(est, metric)) * float(times)
    note = (
        f"{metric} <= {value:.4g}: {times:g} x {name}'s {metric} at this fidelity "
        f"({size} px, base width {fixed.get('model.base_width', ModelConfig().base_width)})"
    )
    return value, note
