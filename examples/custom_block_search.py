"""Search over a block and a metric of your own, without touching plsearch.

Two ways to run it (both search examples/custom_space.yaml, which lists this file under ``imports:``):

    python examples/custom_block_search.py --out results/custom      # the Python API
    python -m plsearch.search --space examples/custom_space.yaml     # the CLI

The block: a depthwise-separable conv unit (3x3 depthwise, 1x1 pointwise, BN, ReLU), registered as
``dwsep`` so that ``model.block: [dwsep, plconv]`` can search it. Blocks answer ``params`` and ``macs``
analytically so that the search screens configs against budgets before building them.
The metric: validation sensitivity (recall of foreground pixels), an extra objective to maximize.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from plsearch.config.registry import register_block
from plsearch.nn.blocks import Block, conv_nd, norm_nd
from plsearch.search import MetricContext, register_metric


@register_block("dwsep")
class DepthwiseSeparable(Block):
    """3x3 depthwise conv -> 1x1 conv -> BN -> ReLU: ``(b, cin, h, w) -> (b, cout, h, w)``."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__(cin, cout, dims)
        self.depthwise = conv_nd(dims)(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = conv_nd(dims)(cin, cout, 1, bias=False)

    def make_state(self) -> nn.Module:
        return norm_nd(self.dims)(self.cout)  # one BN per application (pass, stage), as every block

    def forward(self, x: torch.Tensor, state: nn.Module) -> torch.Tensor:
        return F.relu(state(self.pointwise(self.depthwise(x))), inplace=True)

    @torch.no_grad()
    def zero_input_channels(self, channels: slice) -> None:
        """Silence input ``channels`` (a backward skip starts at zero): depthwise filter c reads channel c."""
        self.depthwise.weight[channels] = 0

    @staticmethod
    def params(cin: int, cout: int, dims: int) -> tuple[int, int]:
        return cin * 3**dims + cin * cout, 2 * cout

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int) -> int:
        return out_voxels * (cin * 3**dims + cin * cout) + 2 * out_voxels * cout


@register_metric("val_sens", "maximize")
def val_sensitivity(ctx: MetricContext) -> float:
    """Per-image mean sensitivity on the validation split, with the trained (best-epoch) model."""
    from plsearch.train.metrics import evaluate_model

    return evaluate_model(
        ctx.model,
        ctx.splits["val"],
        num_classes=ctx.config.model.num_classes,
        batch_size=ctx.config.train.eval_batch_size,
    )["sens"]


def main() -> None:
    from plsearch.report.study import draw_plots
    from plsearch.search import load_space, run_search
    from plsearch.search.pareto import pareto_markdown

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/custom_space")
    p.add_argument("--n-trials", type=int)
    args = p.parse_args()
    space = load_space(Path(__file__).with_name("custom_space.yaml"))
    result = run_search(
        space,
        out_dir=args.out,
        n_trials=args.n_trials,
        draw=draw_plots,
        on_trial=lambda r: print(r["number"], r["state"], r["params"], r["values"]),
    )
    print(pareto_markdown(result.pareto))


if __name__ == "__main__":
    main()
