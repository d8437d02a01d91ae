"""Named configurations of the one progressive-learning graph: PL-Net, PL-Net-dagger, BiO-Net, U-Net.

Presets are data (``ModelConfig`` fields), so naming one imports no torch; ``plsearch.create_model``
(``plsearch.nn.model``) builds one.
"""

from __future__ import annotations

from typing import Any, Mapping

from plsearch.config.registry import Registry
from plsearch.config.schema import ModelConfig, from_dict, to_dict

_BUILTIN: dict[str, dict[str, Any]] = {
    # The paper's network (R1 reconstruction): 2 stages (depth 4, 5), n=2 progressive IPL, Ocs 1.
    "plnet": {},
    # PL-Net-dagger: the same at Ocs 0.5 (3.77 M in the paper).
    "plnet-small": {"ocs": 0.5},
    # BiO-Net's official code at t=3 with INT: one stage, every pass runs both convs of a block,
    # stem + pool, levels from 1/2 resolution, a last up-sampling and a 2-conv post block.
    "bionet": {
        "stages": 1,
        "steps": 2,
        "ipl": "recurrent",
        "iterations": 3,
        "plan": "bionet",
        "integrate": True,
    },
    # The classic U-Net as most PyTorch code writes it: 64..1024 channels, conv-BN-ReLU pairs,
    # 2x2 transposed convs halving the width, concatenated skips, no BSC, no stem.
    "unet": {
        "base_width": 64,
        "stages": 1,
        "steps": 2,
        "ipl": "stacked",
        "bsc": False,
        "stem": 0,
        "transition": "none",
        "up": "convt2_half",
        "block": "convbnrelu",
        "norm_momentum": 0.1,
    },
}


PRESETS: Registry[Mapping[str, Any]] = Registry("model", what="a preset")
for _name, _fields in _BUILTIN.items():
    PRESETS.register(_name, _fields)


def register_preset(name: str, fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Make ``name`` a preset: ``fields`` are ``ModelConfig`` values over its defaults (checked now)."""
    from_dict(ModelConfig, {**to_dict(ModelConfig()), **dict(fields)})
    return PRESETS.register(name, dict(fields))


def list_presets() -> list[str]:
    """Names accepted by ``create_model`` and ``preset_config``."""
    return PRESETS.names()


def get_preset(name: str) -> Mapping[str, Any]:
    """The ``ModelConfig`` fields preset ``name`` sets over the defaults."""
    return PRESETS.get(name)


list_models = list_presets  # the name timm users look for


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """The ``ModelConfig`` of preset ``name`` with ``overrides`` applied (validated)."""
    data = to_dict(ModelConfig())
    data.update(get_preset(name))
    data.update(overrides)
    return from_dict(ModelConfig, data)
