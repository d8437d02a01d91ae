"""PLNet: the torch model that executes a ``Wiring``.

One class serves PL-Net, PL-Net-dagger, BiO-Net and U-Net: they are configurations of one graph
(``plsearch.presets``). Shared layers hold the weights; every application has its own state
(BatchNorm), as in BiO-Net's code and the paper's parameter counts.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from plsearch.config import ModelConfig, from_dict
from plsearch.wiring import Op, Wiring, build_wiring, layer_class, padded_size


def _key(name: str) -> str:
    return name.replace(".", "_")  # nn.ModuleDict keys cannot hold dots


def _last_uses(ops: tuple[Op, ...], keep: tuple[str, ...]) -> list[tuple[str, ...]]:
    """For each op, the tensors no later op reads (dropped at once to save memory)."""
    last: dict[str, int] = {}
    for i, op in enumerate(ops):
        for name in op.inputs:
            last[name] = i
    drops: list[list[str]] = [[] for _ in ops]
    for name, i in last.items():
        if name not in keep:
            drops[i].append(name)
    return [tuple(d) for d in drops]


class PLNet(nn.Module):
    """Progressive learning network (IPL steps x EPL stages) for 2D or 3D segmentation.

    Args:
        in_channels: image channels.
        num_classes: 1 for binary (sigmoid), >1 for multi-class (softmax over dim 1).
        steps: IPL steps n (convs per block; passes with ``ipl='progressive'``).
        stages: EPL stages of increasing depth.
        ocs: output-channel scale (PL-Net 1.0, PL-Net-dagger 0.5).
        spatial_dims: 2 for images, 3 for volumes.
        **kwargs: any other ``ModelConfig`` field (``depth``, ``fsc``, ``bsc``, ``plan``, ``block``...).

    Forward: ``x`` of shape ``(b, in_channels, *spatial)``. In training mode it returns a list of
    every stage's logits, each ``(b, num_classes, *spatial)`` (deep supervision, eq. 4); in eval mode
    it returns the fused logits ``(b, num_classes, *spatial)`` of eq. 5 only and runs nothing that
    feeds only a dropped head. Inputs whose size is not a multiple of ``config.total_stride()`` are
    zero-padded and the logits cropped back.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1, steps: int = 2, stages: int = 2,
                 ocs: float = 1.0, spatial_dims: int = 2, **kwargs: Any) -> None:
        super().__init__()
        cfg = from_dict(ModelConfig, dict(in_channels=in_channels, num_classes=num_classes, steps=steps,
                                          stages=stages, ocs=ocs, spatial_dims=spatial_dims, **kwargs))
        self._config = cfg
        self.wiring: Wiring = build_wiring(cfg)
        dims = cfg.spatial_dims
        self.layers = nn.ModuleDict(
            {_key(lay.name): layer_class(cfg, lay.kind)(lay.cin, lay.cout, dims) for lay in self.wiring.layers}
        )
        self.states = nn.ModuleDict(
            {_key(op.state): self.layers[_key(op.layer)].make_state() for op in self.wiring.ops if op.state}
        )
        self._plans = {}
        for training in (True, False):
            ops = self.wiring.needed_ops(training)
            outs = self.wiring.outputs(training)
            self._plans[training] = (ops, _last_uses(ops, outs), outs)

    @classmethod
    def from_config(cls, config: ModelConfig | Mapping[str, Any]) -> "PLNet":
        """Build from a ``ModelConfig`` or its dict/YAML form (as checkpoints and trial records hold)."""
        data = config.to_dict() if isinstance(config, ModelConfig) else dict(config)
        return cls(**data)

    @property
    def config(self) -> ModelConfig:
        return self._config

    def extra_repr(self) -> str:
        c = self._config
        return f"steps={c.steps}, stages={c.stages}, ocs={c.ocs}, ipl={c.ipl}, plan={c.plan}, block={c.block}"

    def _check_input(self, x: torch.Tensor) -> None:
        cfg = self._config
        if x.dim() != cfg.spatial_dims + 2 or x.shape[1] != cfg.in_channels:
            want = "(b, %d, %s)" % (cfg.in_channels, ", ".join("hw" if cfg.spatial_dims == 2 else "dhw"))
            raise ValueError(f"input of shape {tuple(x.shape)} does not fit this model; expected {want}")
        stride = cfg.total_stride()
        small = [n for n in x.shape[2:] if n < stride]
        if small:
            raise ValueError(
                f"input size {tuple(x.shape[2:])} is smaller than the network's total stride {stride} "
                f"(depth={cfg.depth}, plan={cfg.plan}); use inputs of at least {stride} pixels or lower depth"
            )

    def _run(self, x: torch.Tensor, all_stages: bool) -> list[torch.Tensor]:
        """Execute the wiring; return the logits of the stages that plan outputs, cropped to x."""
        self._check_input(x)
        size = tuple(x.shape[2:])
        padded = padded_size(self._config, size)
        if padded != size:
            pad: list[int] = []
            for n, m in zip(reversed(size), reversed(padded)):
                pad += [0, m - n]
            x = F.pad(x, pad)
        ops, drops, outs = self._plans[all_stages]
        env: dict[str, torch.Tensor] = {"input": x}
        pool = F.max_pool2d if self._config.spatial_dims == 2 else F.max_pool3d
        for op, drop in zip(ops, drops):
            xs = [env[name] for name in op.inputs]
            h = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
            if op.kind == "pool":
                env[op.output] = pool(h, 2)
            else:
                state = self.states[_key(op.state)] if op.state else None
                env[op.output] = self.layers[_key(op.layer)](h, state)
            for name in drop:
                del env[name]
        crop = (slice(None), slice(None)) + tuple(slice(0, n) for n in size)
        return [env[name][crop] for name in outs]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.training:
            return self._run(x, all_stages=True)
        logits = self._run(x, all_stages=False)
        return logits[0] if len(logits) == 1 else torch.stack(logits).sum(0)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's logits ``(b, num_classes, *spatial)`` in the current mode (for inspection)."""
        return self._run(x, all_stages=True)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid for one class, softmax over classes otherwise (eq. 5 applied to fused logits)."""
        return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
