"""plsearch: PL-Net as a searchable graph, for small, accurate medical-image segmentation networks.

``import plsearch`` stays light: torch, optuna, fvcore and matplotlib load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "PLNet",
    "ModelConfig",
    "RunConfig",
    "create_model",
    "list_models",
    "preset_config",
    "profile",
    "estimate",
    "build_wiring",
    "load",
    "Segmenter",
]

_LAZY = {
    "PLNet": ("plsearch.nn.model", "PLNet"),
    "ModelConfig": ("plsearch.config.schema", "ModelConfig"),
    "RunConfig": ("plsearch.config.schema", "RunConfig"),
    "create_model": ("plsearch.nn.model", "create_model"),
    "list_models": ("plsearch.config.presets", "list_models"),
    "preset_config": ("plsearch.config.presets", "preset_config"),
    "estimate": ("plsearch.graph.wiring", "estimate"),
    "profile": ("plsearch.nn.profile", "profile"),
    "build_wiring": ("plsearch.graph.wiring", "build_wiring"),
    "load": ("plsearch.infer.segmenter", "load"),
    "Segmenter": ("plsearch.infer.segmenter", "Segmenter"),
}

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.config.presets import list_models, preset_config
    from plsearch.config.schema import ModelConfig, RunConfig
    from plsearch.graph.wiring import build_wiring, estimate
    from plsearch.infer.segmenter import Segmenter, load
    from plsearch.nn.model import PLNet, create_model
    from plsearch.nn.profile import profile


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'plsearch' has no attribute {name!r}")
