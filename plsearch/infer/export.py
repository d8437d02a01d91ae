"""Export a trained network's inference graph to ONNX or TorchScript.

The exported graph is what deployment runs: BatchNorm folded into the convs
(``PLNet.fuse_for_inference``), only the fused head (eval mode drops the work that feeds lower
heads), and the pad-to-stride / crop-back of ``PLNet.forward`` written as TorchScript functions so
that the file takes any input size (not only multiples of the total stride), like the eager model.
Inputs are what the network saw in training: ``(b, c, h, w)`` images in [0, 1] or ``(b, c, d, h, w)``
z-scored volumes; the output is the fused logits ``(b, k, *spatial)``.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): on a 2-core CPU it takes
seconds where the dynamo exporter took minutes for the same graph. Run it from the shell with
``python -m plsearch.export --checkpoint RUN/best.pt --format onnx --out model.onnx``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FORMATS", "InferenceGraph", "export_model", "inference_graph", "run_exported"]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
_JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"  # TorchScript still works in 2.x; the request is for its files


def _script(fn: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        return torch.jit.script(fn)


@_script
def _pad2(x: torch.Tensor, s: int) -> torch.Tensor:
    h, w = x.size(2), x.size(3)
    return F.pad(x, [0, (s - w % s) % s, 0, (s - h % s) % s])


@_script
def _crop2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return y[:, :, : x.size(2), : x.size(3)]


@_script
def _pad3(x: torch.Tensor, s: int) -> torch.Tensor:
    d, h, w = x.size(2), x.size(3), x.size(4)
    return F.pad(x, [0, (s - w % s) % s, 0, (s - h % s) % s, 0, (s - d % s) % s])


@_script
def _crop3(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return y[:, :, : x.size(2), : x.size(3), : x.size(4)]


class InferenceGraph(nn.Module):
    """A PLNet's eval graph with shape-generic pad/crop: traces into a graph valid at every input size.

    ``PLNet.forward`` pads with Python integer arithmetic, which tracing would freeze at the example
    size; here the padding amounts are computed by scripted functions from the input's runtime shape.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()
        self.stride = int(net.config.total_stride())
        self.dims = int(net.config.spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _pad2(x, self.stride) if self.dims == 2 else _pad3(x, self.stride)
        ops, drops, outs = self.net._plans[False]  # the eval plan: only work that feeds the fused head
        env = {"input": h}
        self.net._exec(ops, drops, env)
        ys = [env[name] for name in outs]
        y = ys[0] if len(ys) == 1 else torch.stack(ys).sum(0)
        return _crop2(y, x) if self.dims == 2 else _crop3(y, x)


def inference_graph(model: nn.Module, *, fuse: bool = True) -> InferenceGraph:
    """The graph to export: ``model`` (a PLNet) with BatchNorm folded (``fuse``), eval mode, no grads."""
    if not hasattr(model, "_plans") or not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} is not a PLNet; export a model built by plsearch")
    net = model.fuse_for_inference() if fuse else model.eval()
    net.requires_grad_(False)
    return InferenceGraph(net).eval()


def _example(model: nn.Module, input_size: int | Sequence[int] | None, batch: int = 1) -> torch.Tensor:
    cfg = model.config
    pre = getattr(model, "preprocessing", None)
    size = input_size if input_size is not None else (pre.image_size if pre is not None else 64)
    spatial = (int(size),) * cfg.spatial_dims if isinstance(size, int) else tuple(int(n) for n in size)
    if len(spatial) != cfg.spatial_dims:
        raise ValueError(
            f"--input-size {' '.join(map(str, spatial))} has {len(spatial)} numbers but the network is "
            f"{cfg.spatial_dims}D; give one number or {cfg.spatial_dims}"
        )
    if any(n < 1 for n in spatial):
        raise ValueError(f"--input-size {spatial} must be positive")
    return torch.rand(batch, cfg.in_channels, *spatial)


def export_model(
    model: nn.Module,
    out: str | Path,
    *,
    fmt: str = "onnx",
    input_size: int | Sequence[int] | None = None,
    dynamic: bool = False,
    fuse: bool = True,
    opset: int = 17,
) -> Path:
    """Write ``model``'s inference graph to ``out``.

    Args:
        model: a PLNet (from ``plsearch.load`` or ``load_checkpoint``).
        fmt: ``onnx`` or ``torchscript``.
        input_size: example spatial size (one int or one per dim); default the training size.
        dynamic: ONNX: batch and spatial axes symbolic (any size); without it the file takes only the
            example's shape. TorchScript files take any size either way.
        fuse: fold BatchNorm (the default; off only to compare).
        opset: ONNX opset.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {list(FORMATS)}")
    graph = inference_graph(model, fuse=fuse)
    x = _example(model, input_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter warnings about the scripted pad/crop are expected
        if fmt == "torchscript":
            traced = torch.jit.trace(graph, x, check_trace=False)
            torch.jit.save(traced, str(tmp))
        else:
            axes = None
            if dynamic:
                names = {0: "batch", 2: "d" if model.config.spatial_dims == 3 else "h"}
                names.update({3: "h", 4: "w"} if model.config.spatial_dims == 3 else {3: "w"})
                axes = {"input": names, "logits": names}
            torch.onnx.export(
                graph,
                (x,),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
            )
    tmp.replace(out)
    log.info("exported %s (%s, example input %s)", out, fmt, tuple(x.shape))
    return out


def run_exported(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    """Run an exported file on ``x``: ONNX in onnxruntime (CPU), TorchScript in torch."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(x)


def verify(path: str | Path, model: nn.Module, sizes: Sequence[Any]) -> float:
    """Largest absolute difference between the exported file and the eager eval model over ``sizes``."""
    worst = 0.0
    model.eval()
    for size in sizes:
        x = _example(model, size)
        with torch.no_grad():
            want = model(x)
        worst = max(worst, float((run_exported(path, x) - want).abs().max()))
    return worst
