"""``python -m plsearch.predict``: mask PNGs for an image file or a folder of images.

Masks are 0/255 for binary models and class indices for multi-class ones, at each input's own size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, run_cli, setup_logging


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.predict", description="Predict masks with a trained checkpoint.")
    p.add_argument("--checkpoint", required=True, help="RUN/best.pt of a training run")
    p.add_argument("--input", required=True, help="an image file, or a folder of images (or with images/)")
    p.add_argument("--out", required=True, help="folder for the mask PNGs (one per image, same stem)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N [auto]")
    p.add_argument("--image-size", type=int, help="size the model sees [the run's data.image_size]")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def _predict(argv: Sequence[str] | None) -> int:
    from plsearch.predict import predict_checkpoint
    from plsearch.gate import check_device

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "batch_size", "image_size")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a file; pass a folder for the mask PNGs")
    device = check_device(args.device)
    result = predict_checkpoint(args.checkpoint, args.input, args.out, device=device, image_size=args.image_size,
                                batch_size=args.batch_size)
    print(f"wrote {len(result['masks'])} masks to {result['out_dir']} (model input {result['image_size']} px)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input)."""
    return run_cli(lambda: _predict(argv))


if __name__ == "__main__":
    raise SystemExit(main())
