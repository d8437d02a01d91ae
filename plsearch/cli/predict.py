"""``python -m plsearch.predict``: masks for an image or NIfTI file, or a folder of them.

Masks are 0/255 PNGs for binary 2D networks and class indices for multi-class ones, at each input's own
size; volumes give NIfTI label volumes with the input's affine. The network is a checkpoint
(``--checkpoint RUN/best.pt``) or a search trial whose weights were kept (``--trial results/NAME:12``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, run_cli, setup_logging


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.predict", description="Predict masks with a trained network.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="RUN/best.pt of a training run")
    src.add_argument("--trial", help="a search trial whose weights were kept, e.g. results/ipl_epl:12")
    p.add_argument(
        "--input",
        required=True,
        help="an image or .nii.gz file, or a folder of them (or with images/, imagesTs/ or imagesTr/)",
    )
    p.add_argument("--out", required=True, help="folder for the masks (one per input, same name)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N [auto]")
    p.add_argument("--image-size", type=int, help="size the network sees [its training size]")
    p.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "resize", "sliding"],
        help="resize to the training size, or sliding windows at the input's resolution [auto]",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def _predict(argv: Sequence[str] | None) -> int:
    from plsearch.infer.predict import predict_checkpoint
    from plsearch.outputs import check_out
    from plsearch.train.fit import resolve_device

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "batch_size", "image_size")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a file; pass a folder for the masks")
    check_out(args.out, inputs=[args.input], owned=[args.checkpoint])  # not in/beside the inputs, not a run folder
    device = resolve_device(args.device)
    result = predict_checkpoint(
        args.checkpoint or args.trial,
        args.input,
        args.out,
        device=device,
        image_size=args.image_size,
        batch_size=args.batch_size,
        mode=args.mode,
        show_progress=not args.quiet,
    )
    print(f"wrote {len(result['masks'])} masks to {result['out_dir']} (network input {result['image_size']} px)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input)."""
    return run_cli(lambda: _predict(argv))


if __name__ == "__main__":
    raise SystemExit(main())
