"""PLNet: the torch model that executes a ``Wiring``.

One class serves PL-Net, PL-Net-dagger, BiO-Net and U-Net: they are configurations of one graph
(``plsearch.config.presets``). Shared layers hold the weights; every application has its own state
(BatchNorm), as in BiO-Net's code and the paper's parameter counts.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from plsearch.config.registry import get_block, get_up
from plsearch.config.schema import ModelConfig, from_dict
from plsearch.graph.wiring import Op, Wiring, build_wiring, padded_size
from plsearch.nn.blocks import Head

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.nn.plan import Plan

EXECUTORS = ("compiled", "reference")


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


@dataclass(frozen=True)
class _Segment:
    """A run of ops of one (stage, pass): the unit of activation checkpointing."""

    ops: tuple[Op, ...]
    drops: tuple[tuple[str, ...], ...]
    inputs: tuple[str, ...]  # tensors it reads from before it
    outputs: tuple[str, ...]  # tensors it makes that later ops (or the model's outputs) read
    release: tuple[str, ...]  # tensors no later segment reads (dropped after this one)


def _segments(ops: tuple[Op, ...], outs: tuple[str, ...]) -> tuple[_Segment, ...]:
    groups: list[list[Op]] = []
    for op in ops:
        if groups and (groups[-1][-1].stage, groups[-1][-1].pass_) == (op.stage, op.pass_):
            groups[-1].append(op)
        else:
            groups.append([op])
    segments = []
    for i, group in enumerate(groups):
        made = {op.output for op in group}
        later = set(outs).union(*(op.inputs for g in groups[i + 1 :] for op in g))
        inputs = dict.fromkeys(n for op in group for n in op.inputs if n not in made)
        outputs = tuple(op.output for op in group if op.output in later)
        release = tuple(n for n in inputs if n not in later)
        segments.append(
            _Segment(tuple(group), tuple(_last_uses(tuple(group), outputs)), tuple(inputs), outputs, release)
        )
    return tuple(segments)


@contextlib.contextmanager
def _restored_norm_stats(norms: list[nn.Module]) -> Iterator[None]:
    """Recomputation under checkpointing: the same ops run again, then running stats are put back."""
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, bufs in zip(norms, saved):
                for k, v in m.named_buffers(recurse=False):
                    v.copy_(bufs[k])


def layer_class(cfg: ModelConfig, kind: str) -> type:
    """The torch class that implements a wiring layer kind (the registered block for ``block``)."""
    if kind == "block":
        return get_block(cfg.block)
    if kind in ("up", "final_up"):
        return get_up(cfg.up)
    return Head


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

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        steps: int = 2,
        stages: int = 2,
        ocs: float = 1.0,
        spatial_dims: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        cfg = from_dict(
            ModelConfig,
            dict(
                in_channels=in_channels,
                num_classes=num_classes,
                steps=steps,
                stages=stages,
                ocs=ocs,
                spatial_dims=spatial_dims,
                **kwargs,
            ),
        )
        self._config = cfg
        self.wiring: Wiring = build_wiring(cfg)
        dims = cfg.spatial_dims
        self.layers = nn.ModuleDict(
            {_key(lay.name): layer_class(cfg, lay.kind)(lay.cin, lay.cout, dims) for lay in self.wiring.layers}
        )
        self.states = nn.ModuleDict(
            {_key(op.state): self.layers[_key(op.layer)].make_state() for op in self.wiring.ops if op.state}
        )
        for module in self.states.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.norm_momentum
        if cfg.bsc_init == "zero":
            widths = cfg.widths
            for op in self.wiring.ops:  # BSC comes first in [b_l, x_l] (eq. 2)
                if op.kind == "block" and len(op.inputs) == 2 and op.edges[0] in ("bsc", "self"):
                    self.layers[_key(op.layer)].zero_input_channels(slice(0, widths[op.level]))
        self._plans = {}
        for training in (True, False):
            ops = self.wiring.needed_ops(training)
            outs = self.wiring.outputs(training)
            self._plans[training] = (ops, _last_uses(ops, outs), outs)
        self._segments = _segments(*self._plans[True][::2])
        self._checkpointing = False
        self.fused: nn.ModuleDict | None = None  # set only on copies made by fuse_for_inference()
        self._executor = "compiled"

    def set_executor(self, name: str) -> "PLNet":
        """``"compiled"`` (default): run the wiring as generated straight-line code (``plsearch.nn.plan``)
        with the blocks' functional fast paths; ``"reference"``: interpret the op records with module
        calls, as before (kept to hold the compiled path equal to it, and to time both). Returns ``self``."""
        if name not in EXECUTORS:
            raise ValueError(f"executor={name!r} is not known; choose one of {list(EXECUTORS)}")
        self._executor = name
        return self

    @property
    def executor(self) -> str:
        return self._executor

    def compiled_plan(self, all_stages: bool, training: bool) -> Plan:
        """The generated forward for one op list and mode (built on first use; copies build their own)."""
        cache = self.__dict__.setdefault("_compiled", {})
        entry = cache.get((all_stages, training))
        if entry is None or entry[0]() is not self:  # a deepcopy carries the original's entries
            from plsearch.nn.plan import build_plan

            entry = cache[all_stages, training] = (weakref.ref(self), build_plan(self, all_stages, training))
        return entry[1]

    def _segment_plan(self, seg: _Segment) -> Plan:
        cache = self.__dict__.setdefault("_compiled", {})
        entry = cache.get(id(seg))
        if entry is None or entry[0]() is not self:
            from plsearch.nn.plan import build_ops

            entry = cache[id(seg)] = (
                weakref.ref(self),
                build_ops(self, seg.ops, seg.drops, seg.inputs, seg.outputs, True),
            )
        return entry[1]

    def __getstate__(self) -> dict[str, Any]:  # pickling (torch.save of a whole model): no generated code
        state = self.__dict__.copy()
        state.pop("_compiled", None)
        return state

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
            want = f"(b, {cfg.in_channels}, {', '.join('hw' if cfg.spatial_dims == 2 else 'dhw')})"
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
        if self._checkpointing and self.training and torch.is_grad_enabled():
            for seg in self._segments:
                norms = [
                    m
                    for op in seg.ops
                    if op.state
                    for m in self.states[_key(op.state)].modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm)
                ]
                ys = checkpoint(
                    self._exec_segment,
                    seg,
                    *(env[n] for n in seg.inputs),
                    use_reentrant=False,
                    context_fn=lambda norms=norms: (contextlib.nullcontext(), _restored_norm_stats(norms)),
                )
                env.update(zip(seg.outputs, ys))
                for name in seg.release:
                    del env[name]
            if self._executor == "compiled":  # segments count their norms' batches here, once
                norms = [m for seg in self._segments for m in self._segment_plan(seg).norms]
                if norms:
                    torch._foreach_add_([m.num_batches_tracked for m in norms], 1)
        elif self._executor == "compiled":
            plan = self.compiled_plan(all_stages, self.training)
            ys = plan.fn(x)
            if plan.norms and self.training:  # the batch counters nn.BatchNorm advances per call, in one op
                torch._foreach_add_([m.num_batches_tracked for m in plan.norms], 1)
            env.update(zip(outs, ys))
        else:
            self._exec(ops, drops, env)
        crop = (slice(None), slice(None)) + tuple(slice(0, n) for n in size)
        return [env[name][crop] for name in outs]

    def _exec(
        self,
        ops: tuple[Op, ...],
        drops: list[tuple[str, ...]] | tuple[tuple[str, ...], ...],
        env: dict[str, torch.Tensor],
    ) -> None:
        """Run ``ops`` in order on the tensors in ``env``, freeing each tensor after its last use."""
        pool = F.max_pool2d if self._config.spatial_dims == 2 else F.max_pool3d
        fused = self.fused
        for op, drop in zip(ops, drops):
            xs = [env[name] for name in op.inputs]
            key = _key(op.state)
            if fused is not None and key in fused:
                # folded norms; a self-concatenation [x, x] runs as one conv on x with summed weights
                env[op.output] = fused[key](xs[0] if "self" in op.edges else torch.cat(xs, dim=1))
            elif self.training and "self" in op.edges:
                # [x, x] (eq. 2, first pass): one conv on x with summed weight halves, exact, half
                # the MACs. Training only, so that eval-mode MACs (fvcore, profile) count the paper's graph.
                env[op.output] = self.layers[_key(op.layer)].forward_self_concat(xs[0], self.states[key])
            else:
                h = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
                if op.kind == "pool":
                    env[op.output] = pool(h, 2)
                else:
                    state = self.states[key] if op.state else None
                    env[op.output] = self.layers[_key(op.layer)](h, state)
            for name in drop:
                del env[name]

    def _exec_segment(self, seg: _Segment, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._executor == "compiled":
            return self._segment_plan(seg).fn(*xs)
        env = dict(zip(seg.inputs, xs))
        self._exec(seg.ops, seg.drops, env)
        return tuple(env[name] for name in seg.outputs)

    def set_checkpointing(self, enabled: bool = True) -> "PLNet":
        """Recompute each (stage, pass) segment's activations in backward instead of storing them.

        Trades about one extra forward per training step for memory (``torch.utils.checkpoint``,
        non-reentrant); BatchNorm running statistics are updated once, as without it. Training
        mode only; eval is unaffected. Returns ``self``.
        """
        self._checkpointing = bool(enabled)
        return self

    @property
    def checkpointing(self) -> bool:
        return self._checkpointing

    def fuse_for_inference(self) -> "PLNet":
        """A copy for inference with every application's eval BatchNorm folded into its conv.

        Exact up to float rounding: conv -> BN -> ReLU folds as usual; the paper's conv -> ReLU -> BN
        becomes one conv and one clamp (``a * relu(z) + b = max(a * z + b, b)`` for ``a >= 0``);
        a self-concatenation ``[x, x]`` (first pass, eq. 2) runs as one conv on ``x`` with summed
        weight halves (half its MACs). Folded weights are per application, so the copy holds more
        weights than the model. The copy is eval-only: calling it in training mode raises.
        """
        new = copy.deepcopy(self).eval()
        fused = {}
        for op in new.wiring.needed_ops(training=False):
            if op.kind == "pool" or not op.state:
                continue
            layer, state = new.layers[_key(op.layer)], new.states[_key(op.state)]
            module = layer.fuse(state, self_concat="self" in op.edges)
            if module is None and "self" in op.edges:
                module = layer.fuse(state)
                module = None if module is None else nn.Sequential(_SelfConcat(), module)
            if module is not None:
                fused[_key(op.state)] = module
        new.fused = nn.ModuleDict(fused)
        new.requires_grad_(False)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.fused is not None and self.training:
            raise RuntimeError(
                "this copy was made by fuse_for_inference() and runs in eval mode only; train the original model"
            )
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


class _SelfConcat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1)


def create_model(name: str = "plnet", **overrides: Any) -> PLNet:
    """Build preset ``name`` (see ``plsearch.list_models()``), e.g. ``create_model("plnet", ocs=0.5)``."""
    from plsearch.config.presets import preset_config

    return PLNet.from_config(preset_config(name, **overrides))
