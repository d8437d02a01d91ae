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
    "PLNet": ("plsearch.model", "PLNet"),
    "ModelConfig": ("plsearch.config", "ModelConfig"),
    "RunConfig": ("plsearch.config", "RunConfig"),
    "create_model": ("plsearch.model", "create_model"),
    "list_models": ("plsearch.presets", "list_models"),
    "preset_config": ("plsearch.presets", "preset_config"),
    "estimate": ("plsearch.wiring", "estimate"),
    "build_wiring": ("plsearch.wiring", "build_wiring"),
    "load": ("plsearch.segmenter", "load"),
    "Segmenter": ("plsearch.segmenter", "Segmenter"),
}

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.config import ModelConfig, RunConfig
    from plsearch.model import PLNet, create_model
    from plsearch.presets import list_models, preset_config
    from plsearch.segmenter import Segmenter, load
    from plsearch.wiring import build_wiring, estimate


def __getattr__(name: str) -> Any:
    if name == "profile":
        import importlib

        return importlib.import_module("plsearch.profile")  # a callable module: profile(model, size)
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'plsearch' has no attribute {name!r}")
