"""Straight-line execution of a wiring: Python source generated once per model and mode.

The reference executor (``PLNet._exec``) walks the wiring's op records on every forward: a dict
of named tensors, a ``ModuleDict`` lookup and a ``Module.__call__`` per application, a branch per
op kind. ``build_plan`` writes the same ops once as a Python function (one line per op, ``del``
after a tensor's last use, the blocks' ``fast_forward`` bound in), compiles it, and the model calls
it instead. ``plan.source`` shows what runs. Outputs, gradients and BatchNorm running statistics
equal the reference executor's (``tests/test_plan.py``).
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.nn.model import PLNet

_COUNTER = [0]


@dataclass(frozen=True)
class Plan:
    """A compiled forward: ``fn(x)`` returns the mode's output tensors (uncropped, in order)."""

    source: str
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
    norms: tuple[nn.Module, ...]  # BatchNorms whose batch counter the caller advances (training)


def _key(name: str) -> str:
    return name.replace(".", "_")


def counted_norms(state: nn.Module) -> list[nn.Module]:
    """The BatchNorms in ``state`` that ``blocks.base.batch_norm`` applies functionally (it leaves
    their ``num_batches_tracked`` to the caller, which advances all of them in one op)."""
    return [
        m
        for m in state.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.track_running_stats
        and m.momentum is not None
        and m.num_batches_tracked is not None
    ]


def build_plan(model: "PLNet", all_stages: bool, training: bool) -> Plan:
    """Generate and compile the straight-line forward of ``model``: every stage's outputs or the
    eval outputs only (``all_stages``), in train or eval mode."""
    ops, drops, outs = model._plans[all_stages]
    return build_ops(model, ops, drops, ("input",), outs, training)


def build_ops(
    model: "PLNet", ops: tuple, drops: tuple | list, inputs: tuple[str, ...], outs: tuple[str, ...], training: bool
) -> Plan:
    """Compile ``ops`` (reading tensors ``inputs``, returning ``outs``) as one function of ``inputs``
    (a whole forward, or one checkpointing segment)."""
    from plsearch.nn.blocks.base import Block

    fused = model.fused
    ns: dict[str, Any] = {"cat": torch.cat, "pool": F.max_pool2d if model.config.spatial_dims == 2 else F.max_pool3d}
    names = {name: f"a{i}" for i, name in enumerate(inputs)}
    lines = [f"def plan({', '.join(names.values())}):"]
    norms: list[nn.Module] = []
    for i, (op, drop) in enumerate(zip(ops, drops)):
        args = [names[n] for n in op.inputs]
        joined = args[0] if len(args) == 1 else f"cat(({', '.join(args)}), 1)"
        out = names.setdefault(op.output, f"t{i}")
        key = _key(op.state)
        if fused is not None and key in fused:
            ns[f"f{i}"] = fused[key].forward
            call = f"f{i}({args[0] if 'self' in op.edges else joined})"
        elif op.kind == "pool":
            call = f"pool({joined}, 2)"
        else:
            layer = model.layers[_key(op.layer)]
            state = model.states[key] if op.state else None
            fast = type(layer).fast_forward is not Block.fast_forward
            if fast and state is not None and training:
                norms += counted_norms(state)
            ns[f"s{i}"] = state
            if training and "self" in op.edges:
                ns[f"f{i}"] = layer.fast_self_concat
                call = f"f{i}({args[0]}, s{i}, True)"
            else:
                ns[f"f{i}"] = layer.fast_forward
                call = f"f{i}({joined}, s{i}, {training})"
        lines.append(f"    {out} = {call}  # {op.output}")
        gone = [names[n] for n in drop if n not in outs]
        if gone:
            lines.append(f"    del {', '.join(gone)}")
    lines.append(f"    return ({', '.join(names[o] for o in outs)},)")
    source = "\n".join(lines) + "\n"
    _COUNTER[0] += 1
    filename = f"<plsearch plan {_COUNTER[0]} {'train' if training else 'eval'}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show lines
    exec(compile(source, filename, "exec"), ns)
    return Plan(source, ns["plan"], tuple(dict.fromkeys(norms)))
