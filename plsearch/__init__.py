"""plsearch: PL-Net as a searchable graph, for small, accurate medical-image segmentation networks.

``import plsearch`` stays light: torch, optuna, fvcore and matplotlib load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public surface, in one place: what a user imports from ``plsearch`` (models, costs, weights) and the
# extension points (``register_*``); ``plsearch.testing`` holds the conformance checks that go with them.
# Everything else is reachable by its module path (CHANGELOG.md lists what moved).
_LAZY = {
    # the model and its configuration
    "PLNet": ("plsearch.nn.model", "PLNet"),
    "create_model": ("plsearch.nn.model", "create_model"),
    "list_models": ("plsearch.config.presets", "list_models"),
    "preset_config": ("plsearch.config.presets", "preset_config"),
    "ModelConfig": ("plsearch.config.schema", "ModelConfig"),
    "RunConfig": ("plsearch.config.schema", "RunConfig"),
    # costs before and after building
    "build_wiring": ("plsearch.graph.wiring", "build_wiring"),
    "estimate": ("plsearch.graph.wiring", "estimate"),
    "draw_wiring": ("plsearch.graph.draw", "draw_wiring"),
    "profile": ("plsearch.nn.profile", "profile"),
    # searching
    "load_space": ("plsearch.search.space", "load_space"),
    "run_search": ("plsearch.search.runner", "run_search"),
    # weights you keep
    "load": ("plsearch.infer.segmenter", "load"),
    "Segmenter": ("plsearch.infer.segmenter", "Segmenter"),
    # extension points: each a registry, a protocol or base class, and a check in plsearch.testing
    "Block": ("plsearch.nn.blocks.base", "Block"),
    "register_block": ("plsearch.config.registry", "register_block"),
    "register_up": ("plsearch.config.registry", "register_up"),
    "register_preset": ("plsearch.config.presets", "register_preset"),
    "MetricContext": ("plsearch.search.registries", "MetricContext"),
    "register_metric": ("plsearch.search.registries", "register_metric"),
    "register_sampler": ("plsearch.search.registries", "register_sampler"),
    "register_pruner": ("plsearch.search.registries", "register_pruner"),
    "DataFormat": ("plsearch.data.formats", "DataFormat"),
    "register_format": ("plsearch.data.formats", "register_format"),
}

__all__ = [
    "PLNet",
    "create_model",
    "list_models",
    "preset_config",
    "ModelConfig",
    "RunConfig",
    "build_wiring",
    "estimate",
    "draw_wiring",
    "profile",
    "load_space",
    "run_search",
    "load",
    "Segmenter",
    "Block",
    "register_block",
    "register_up",
    "register_preset",
    "MetricContext",
    "register_metric",
    "register_sampler",
    "register_pruner",
    "DataFormat",
    "register_format",
]

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.config.presets import list_models, preset_config, register_preset
    from plsearch.config.registry import register_block, register_up
    from plsearch.config.schema import ModelConfig, RunConfig
    from plsearch.data.formats import DataFormat, register_format
    from plsearch.graph.draw import draw_wiring
    from plsearch.graph.wiring import build_wiring, estimate
    from plsearch.infer.segmenter import Segmenter, load
    from plsearch.nn.blocks.base import Block
    from plsearch.nn.model import PLNet, create_model
    from plsearch.nn.profile import profile
    from plsearch.search.registries import MetricContext, register_metric, register_pruner, register_sampler
    from plsearch.search.runner import run_search
    from plsearch.search.space import load_space


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'plsearch' has no attribute {name!r}")
