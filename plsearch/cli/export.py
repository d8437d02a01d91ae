"""``python -m plsearch.export``: a trained network's inference graph as ONNX or TorchScript.

    python -m plsearch.export --checkpoint runs/dsb/best.pt --format onnx --out model.onnx --dynamic
    python -m plsearch.export --trial results/ipl_epl:12 --format torchscript --out model.pt

After writing, the file is run once (onnxruntime / torch) against the eager model at the example size
and the largest difference is printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from plsearch.cli import CLIError, Parser, argv_or_sys, run_cli, setup_logging


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.export", description="Export a trained network to ONNX or TorchScript.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="RUN/best.pt of a training run")
    src.add_argument("--trial", help="a search trial whose weights were kept, e.g. results/ipl_epl:12")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"], help="file format")
    p.add_argument("--out", required=True, help="the file to write (e.g. model.onnx, model.pt)")
    p.add_argument(
        "--input-size", type=int, nargs="+", help="example spatial size: one number or one per axis [the training size]"
    )
    p.add_argument("--dynamic", action="store_true", help="ONNX: symbolic batch and spatial axes (any input size)")
    p.add_argument("--no-fuse", action="store_true", help="keep BatchNorm unfolded (for comparison)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset [17]")
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def _export(argv: Sequence[str] | None) -> int:
    from plsearch.infer.export import export_model, verify
    from plsearch.infer.segmenter import load
    from plsearch.outputs import check_out

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    ref = args.checkpoint or args.trial
    out = Path(args.out)
    if out.is_dir():
        name = "model.onnx" if args.format == "onnx" else "model.pt"
        raise CLIError(f"--out {out} is a folder; pass a file name such as {out / name}")
    check_out(out, owned=[args.checkpoint], need_dir=False)  # not the checkpoint, not into its run folder
    if args.checkpoint and out.resolve() == Path(args.checkpoint).resolve():
        raise CLIError(f"--out {out} is the checkpoint itself; choose another file name")
    model = load(ref)
    size = None if not args.input_size else (args.input_size[0] if len(args.input_size) == 1 else args.input_size)
    path = export_model(
        model, out, fmt=args.format, input_size=size, dynamic=args.dynamic, fuse=not args.no_fuse, opset=args.opset
    )
    diff = verify(path, model, [size])
    print(
        f"wrote {path} ({args.format}{', dynamic axes' if args.dynamic and args.format == 'onnx' else ''}); "
        f"largest difference to the eager model: {diff:.2e}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input)."""
    from plsearch.infer.artifacts import ArtifactError
    from plsearch.nn.checkpoint import CheckpointError

    return run_cli(lambda: _export(argv), user_errors=(ArtifactError, CheckpointError))


if __name__ == "__main__":
    raise SystemExit(main())
