"""``python -m plsearch.evaluate``: metrics of a checkpoint on a split, plus best/worst overlays.

Writes OUT/metrics.json (figures and per-image Dice) and OUT/best_worst.png; OUT defaults to
``eval_<split>`` next to the checkpoint. Without ``--data`` the run's own data folder is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from plsearch.cli import Parser, argv_or_sys, check_positive, run_cli, setup_logging


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.evaluate", description="Evaluate a trained checkpoint.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="RUN/best.pt (or last.pt) of a training run")
    src.add_argument("--trial", help="a search trial whose weights were kept, e.g. results/ipl_epl:12")
    p.add_argument("--data", help="data folder (default: the folder the run trained on)")
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="the run's split of the folder, or all of its images [test]",
    )
    p.add_argument("--out", help="output folder [eval_<split> next to the checkpoint]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N [auto]")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--count", type=int, default=4, help="best and worst images to draw [4]")
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def _run_data(checkpoint: str) -> str | None:
    """The data folder a checkpoint's run trained on (None: the synthetic set, or a checkpoint that cannot
    be read here: evaluating it says why)."""
    from plsearch.infer.segmenter import resolve_checkpoint
    from plsearch.nn.checkpoint import read_checkpoint
    from plsearch.outputs import named_data

    try:
        run = read_checkpoint(resolve_checkpoint(checkpoint)).get("run_config") or {}
    except Exception:  # noqa: BLE001 - evaluate_checkpoint reads it again and reports the problem
        return None
    roots = named_data(run)
    return roots[0] if roots else None


def _evaluate(argv: Sequence[str] | None) -> int:
    from plsearch.cli.formatting import format_metrics
    from plsearch.config.gate import check_device
    from plsearch.infer.evaluate import evaluate_checkpoint

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "batch_size", "count")
    device = check_device(args.device)
    if args.data is not None and not Path(args.data).is_dir():
        raise FileNotFoundError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
    if args.trial:  # its kept weights (plsearch.infer.artifacts); the default output goes next to the study
        from plsearch.config.naming import parse_trial_ref

        ref = parse_trial_ref(args.trial)
        args.checkpoint = args.trial
        default_out = ref.study.folder / f"eval_trial{ref.number}_{args.split}"
    else:
        default_out = Path(args.checkpoint).parent / f"eval_{args.split}"
    out = Path(args.out) if args.out else default_out
    from plsearch.outputs import check_out, claim_folder, named_data, record_written

    data = args.data if args.data is not None else _run_data(args.checkpoint)  # the run's own data by default
    owned = None if args.trial else args.checkpoint
    check_out(out, inputs=named_data(data), owned=[owned])  # not a file, not in the data, not the run folder itself
    names = ("metrics.json", "best_worst.png")
    claim_folder(out, "eval", targets=names, adopt=names, create=False)  # its own, or an earlier version's
    result = evaluate_checkpoint(
        args.checkpoint,
        data=args.data,
        split=args.split,
        out_dir=out,
        device=device,
        batch_size=args.batch_size,
        k=args.count,
    )
    claim_folder(out, "eval", targets=names, adopt=names)  # written: record them (a rerun may replace them)
    record_written(out, names)
    print(format_metrics(result, f"{args.split} metrics of {args.checkpoint}:"))
    print(f"wrote {result['metrics_json']} and {result['overlays']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input)."""
    return run_cli(lambda: _evaluate(argv))


if __name__ == "__main__":
    raise SystemExit(main())
