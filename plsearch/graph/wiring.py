"""The progressive-learning graph as plain data: shared layers, their applications, and edges.

``build_wiring(cfg)`` turns a ``ModelConfig`` into a ``Wiring``: every shared layer (weights), and
the ordered list of ops (one per application of a layer, or a pool) that one forward runs, each
naming the tensors it concatenates and the tensor it produces. No torch here: the model executes
this list, ``estimate()`` costs it analytically, and ``plsearch.graph.draw`` pictures it.

``layer_cost`` answers a layer's params and MACs (``plsearch.graph.costs``); the torch class that builds
it is ``plsearch.nn.model.layer_class``'s business.

Naming (see the wiring notes, ``../shared/design/plnet-wiring.md``):
- layers: ``stem{i}``, ``L{l}.conv{j}`` (encoder level l, conv j of ``steps``), ``T{l}`` (transition
  conv before the pool), ``U{l}`` (up-sampling from level l to l-1; ``U0`` goes to the stem
  resolution in the BiO-Net plan), ``D{l}.conv{j}`` (decoder level l), ``post{i}``, ``head{k}``.
- tensors: ``input``, ``stem``, ``x0``, and per stage k, pass p: ``s{k}p{p}.x{l}`` (level input),
  ``.e{l}`` (encoder output, the FSC source), ``.u{l}`` (up-sampled into level l), ``.d{l}``
  (decoder output, the BSC source), ``.out`` (pass output); ``s{k}.logits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from plsearch.config.registry import get_block, get_up
from plsearch.config.schema import ModelConfig

# Which edge kind each input of an op is, for drawing and inspection.
EDGE_KINDS = ("flow", "bsc", "self", "fsc", "down", "up", "fuse")


@dataclass(frozen=True)
class Layer:
    """Shared weights: one registered block (or up/head unit) with fixed in/out widths."""

    name: str
    kind: str  # "block" | "up" | "final_up" | "head"
    cin: int
    cout: int


@dataclass(frozen=True)
class Op:
    """One application: concat ``inputs`` on channels, apply ``layer`` (or pool), name the result."""

    kind: str  # "block" | "up" | "head" | "pool"
    layer: str  # "" for pool
    inputs: tuple[str, ...]
    edges: tuple[str, ...]  # edge kind of each input (EDGE_KINDS)
    output: str
    res: int  # output resolution: spatial size is input size / 2**res
    state: str  # key of this application's own state (norms); "" if none
    stage: int = -1
    pass_: int = -1
    level: int = -1
    role: str = ""  # stem | encode | transition | pool | bottleneck | up | decode | post | head


@dataclass(frozen=True)
class Wiring:
    config: ModelConfig
    layers: tuple[Layer, ...]
    ops: tuple[Op, ...]
    stage_outputs: tuple[str, ...]  # logits tensor of each stage

    def layer(self, name: str) -> Layer:
        return self._by_name[name]

    @property
    def _by_name(self) -> dict[str, Layer]:
        return {layer.name: layer for layer in self.layers}

    def outputs(self, training: bool) -> tuple[str, ...]:
        """Tensors the forward returns: every stage's logits in training, else what eq. 5 fuses."""
        if training or self.config.fusion == "sum":
            return self.stage_outputs
        return self.stage_outputs[-1:]

    def needed_ops(self, training: bool) -> tuple[Op, ...]:
        """Ops that feed the outputs; in eval this drops heads (and post blocks) nobody reads."""
        need = set(self.outputs(training))
        keep: list[Op] = []
        for op in reversed(self.ops):
            if op.output in need:
                keep.append(op)
                need.update(op.inputs)
        return tuple(reversed(keep))


@dataclass
class _Builder:
    cfg: ModelConfig
    layers: dict[str, Layer] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)

    def layer(self, name: str, kind: str, cin: int, cout: int) -> str:
        new = Layer(name, kind, cin, cout)
        old = self.layers.setdefault(name, new)
        if old != new:  # a shared layer must see the same widths in every pass and stage
            raise AssertionError(f"wiring bug: layer {name} used as {old} and as {new}")
        return name

    def op(
        self,
        kind: str,
        layer: str,
        inputs: Sequence[str],
        edges: Sequence[str],
        output: str,
        res: int,
        state: str,
        **where: object,
    ) -> str:
        self.ops.append(Op(kind, layer, tuple(inputs), tuple(edges), output, res, state, **where))  # type: ignore[arg-type]
        return output


def _conv_chain(
    b: _Builder,
    tag: str,
    prefix: str,
    letter: str,
    lvl: int,
    convs: int,
    cin: int,
    width: int,
    inputs: list[Any],
    edges: list[str],
    res: int,
    role: str,
    where: Mapping[str, Any],
) -> str:
    """A level's ``convs`` shared convs in a row (encoder ``L``/``e`` or decoder ``D``/``d``): the first reads
    ``inputs`` along ``edges`` (the BSC or FSC concatenation), the rest the one before; returns the last output."""
    x = ""
    for j in range(1, convs + 1):
        name = b.layer(f"{prefix}{lvl}.conv{j}", "block", cin if j == 1 else width, width)
        out = f"{tag}.{letter}{lvl}" if j == convs else f"{tag}.{letter}{lvl}_{j}"
        x = b.op("block", name, inputs, edges, out, res, f"{tag}.{prefix}{lvl}.conv{j}", level=lvl, role=role, **where)
        inputs, edges = [x], ["flow"]
    return x


def build_wiring(cfg: ModelConfig) -> Wiring:
    """Lay out every shared layer and every application for ``cfg`` (pure; no torch)."""
    b = _Builder(cfg)
    c = cfg.widths
    off = 1 if cfg.plan == "bionet" else 0  # BiO-Net plan: stem at full size, levels from 1/2

    # Stem (computed once, feeds every stage), then the level-0 input x0.
    h, width = "input", cfg.in_channels
    for i in range(cfg.stem):
        h = b.op(
            "block", b.layer(f"stem{i}", "block", width, c[0]), [h], ["flow"], f"stem{i}", 0, f"stem{i}", role="stem"
        )
        width = c[0]
    if off:
        h = b.op("pool", "", [h], ["down"], "x0", 1, "", role="pool")

    def x_width(level: int) -> int:
        if level == 0:
            return width
        return c[level] if cfg.transition == "conv" else c[level - 1]

    prev: dict[int, str] = {}  # BSC sources left by the previous pass (or stage): level -> tensor
    stage_outputs = []
    for k, stage_depth in enumerate(cfg.stage_depths):
        bottom = stage_depth - 1
        pass_outputs = []
        for p in range(cfg.passes):
            convs = cfg.convs_in_pass(p)
            tag = f"s{k}p{p}"
            where = dict(stage=k, pass_=p)
            cur: dict[int, str] = {}
            x = h
            # Encoder, eq. 2: BSC concatenates [b_l, x_l] in front of each level's first conv.
            for lvl in range(bottom + 1):
                has_bsc = lvl < cfg.depth - 1 and cfg.bsc_at(lvl)
                src = prev.get(lvl, x) if has_bsc else None
                inputs = [src, x] if src else [x]
                edges = (["self" if src == x else "bsc"] if src else []) + ["flow"]
                cin = x_width(lvl) + (c[lvl] if has_bsc else 0)
                role = "bottleneck" if lvl == bottom else "encode"
                x = _conv_chain(b, tag, "L", "e", lvl, convs, cin, c[lvl], inputs, edges, lvl + off, role, where)
                cur[lvl] = x  # e_l: the bottleneck's is the next pass's BSC source at this level
                if lvl < bottom:
                    if cfg.transition == "conv":
                        t = b.layer(f"T{lvl}", "block", c[lvl], c[lvl + 1])
                        x = b.op(
                            "block",
                            t,
                            [x],
                            ["flow"],
                            f"{tag}.t{lvl}",
                            lvl + off,
                            f"{tag}.T{lvl}",
                            level=lvl,
                            role="transition",
                            **where,
                        )
                    x = b.op(
                        "pool",
                        "",
                        [x],
                        ["down"],
                        f"{tag}.x{lvl + 1}",
                        lvl + 1 + off,
                        "",
                        level=lvl + 1,
                        role="pool",
                        **where,
                    )
            # Decoder, eq. 1: FSC concatenates [e_l, u_l] in front of each level's first conv.
            y = x
            for lvl in range(bottom - 1, -1, -1):
                up_out = up_unit(cfg.up).out_width(c[lvl + 1], c[lvl])
                u = b.layer(f"U{lvl + 1}", "up", c[lvl + 1], up_out)
                y = b.op(
                    "up", u, [y], ["up"], f"{tag}.u{lvl}", lvl + off, f"{tag}.U{lvl + 1}", level=lvl, role="up", **where
                )
                fsc = cfg.fsc_at(lvl)
                inputs = [cur[lvl], y] if fsc else [y]
                edges = ["fsc", "flow"] if fsc else ["flow"]
                cin = (c[lvl] if fsc else 0) + up_out
                y = _conv_chain(b, tag, "D", "d", lvl, convs, cin, c[lvl], inputs, edges, lvl + off, "decode", where)
                cur[lvl] = y
            if off:
                u = b.layer("U0", "final_up", c[0], c[0])
                y = b.op("up", u, [y], ["up"], f"{tag}.out", 0, f"{tag}.U0", level=-1, role="up", **where)
            pass_outputs.append(y)
            prev = cur
        # Stage output: BiO-Net plan runs the post block (on all passes' outputs with INT).
        y = pass_outputs[-1]
        if off:
            inputs = pass_outputs if cfg.integrate else [y]
            edges = ["fuse"] * len(inputs)
            for i in range(2):
                cin = c[0] * len(inputs) if i == 0 else c[0]
                name = b.layer(f"post{i}", "block", cin, c[0])
                y = b.op("block", name, inputs, edges, f"s{k}.post{i}", 0, f"s{k}.post{i}", stage=k, role="post")
                inputs, edges = [y], ["flow"]
        head = b.layer(f"head{k}", "head", c[0], cfg.num_classes)
        stage_outputs.append(b.op("head", head, [y], ["flow"], f"s{k}.logits", 0, "", stage=k, role="head"))
    # Drop dead work: without BSC an earlier pass (or stage) may feed nothing that reaches a head.
    live = Wiring(cfg, (), tuple(b.ops), tuple(stage_outputs)).needed_ops(training=True)
    used = {op.layer for op in live}
    layers = tuple(lay for lay in b.layers.values() if lay.name in used)
    return Wiring(cfg, layers, live, tuple(stage_outputs))


# ----------------------------------------------------------------------------- analytic cost


@dataclass(frozen=True)
class Estimate:
    """Analytic cost of a config: trainable ``params`` and eval-mode ``macs`` as fvcore counts them."""

    params: int
    macs: int
    input_size: tuple[int, ...]


def up_unit(name: str) -> Any:
    """What answers an up unit's ``params``/``macs``/``out_width``: the built-in cost table (no torch), else the
    plug-in's own class (``register_up``; its module imported torch already)."""
    from plsearch.graph import costs

    return costs.UP_COSTS.get(name) or get_up(name)


def layer_cost(cfg: ModelConfig, kind: str) -> Any:
    """What answers a layer's ``params``/``macs``: the built-in cost table (no torch), else the plug-in
    block's or up unit's own class (its module imported torch already)."""
    from plsearch.graph import costs

    if kind == "block":
        return costs.BLOCK_COSTS.get(cfg.block) or get_block(cfg.block)
    if kind in ("up", "final_up"):
        return up_unit(cfg.up)
    return costs.HEAD_COST


def padded_size(cfg: ModelConfig, input_size: int | Sequence[int]) -> tuple[int, ...]:
    """Spatial size after padding up to a multiple of ``cfg.total_stride()``."""
    size = (input_size,) * cfg.spatial_dims if isinstance(input_size, int) else tuple(input_size)
    if len(size) != cfg.spatial_dims:
        raise ValueError(f"input_size {size} has {len(size)} dims; spatial_dims={cfg.spatial_dims}")
    s = cfg.total_stride()
    return tuple(math.ceil(n / s) * s for n in size)


def estimate(cfg: ModelConfig, input_size: int | Sequence[int] = 224, wiring: Wiring | None = None) -> Estimate:
    """Parameters and eval-mode MACs without building the model (milliseconds).

    Equal to ``plsearch.nn.profile`` on the built model (a test holds them equal); MACs follow
    fvcore's conventions (one fused multiply-add = 1; transposed convs on the input grid; BN
    counted as 2 per element; pools, activations and concatenations free).
    """
    w = wiring or build_wiring(cfg)
    size = padded_size(cfg, input_size)
    params = 0
    for layer in w.layers:
        params += layer_cost(cfg, layer.kind).params(layer.cin, layer.cout, cfg.spatial_dims)[0]
    macs = 0
    for op in w.ops:
        if op.kind == "pool":
            continue
        layer = w.layer(op.layer)
        cls = layer_cost(cfg, layer.kind)
        if op.state:
            params += cls.params(layer.cin, layer.cout, cfg.spatial_dims)[1]
    for op in w.needed_ops(training=False):
        if op.kind == "pool":
            continue
        layer = w.layer(op.layer)
        voxels = math.prod(n // 2**op.res for n in size)
        macs += layer_cost(cfg, layer.kind).macs(layer.cin, layer.cout, cfg.spatial_dims, voxels)
    return Estimate(params, macs, size)
