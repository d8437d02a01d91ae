"""``python -m plsearch.train``: train one model on a data folder (or the synthetic set).

Writes RUN/config.yaml, RUN/log.jsonl (one row per epoch), RUN/best.pt, RUN/last.pt,
RUN/curves.png and RUN/metrics.json, and prints the test metrics of the best epoch.

``--set KEY=VALUE`` takes dotted RunConfig paths (``model.ocs=0.5``, ``train.epochs=5``,
``data.image_size=64``). A bare field name is accepted when exactly one of model/data/train has it
(``ocs=0.5``, ``epochs=5``); ``seed`` is in data and train, so write ``data.seed`` or ``train.seed``.
The flags ``--epochs``, ``--image-size`` and ``--device`` are applied after ``--set``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, run_cli, setup_logging
from plsearch.cli.formatting import format_metrics
from plsearch.config.gate import parse_sets
from plsearch.config.schema import DataConfig, RunConfig, qualify_key

__all__ = ["main", "build_parser", "resolve_config", "parse_sets", "qualify_key", "format_metrics"]


def build_parser() -> Parser:
    p = Parser(
        prog="python -m plsearch.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="", help="data folder with images/ and masks/ (default: synthetic set)")
    p.add_argument("--model", help="preset: plnet, plnet-small, bionet, unet [plnet; a --resume keeps the run's own]")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set model.ocs=0.5 --set train.lr=3e-4",
    )
    p.add_argument("--out", required=True, help="run folder to write (must not hold a run unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument(
        "--trial",
        help="retrain a search trial's config (e.g. results/ipl_epl:12); raise the fidelity "
        "with --set/--epochs/--image-size (--model is ignored)",
    )
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--image-size", type=int, help="data.image_size")
    p.add_argument("--device", help="train.device: auto, cpu, cuda, cuda:N [auto]")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def resolve_config(args) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config before the data is read (``plsearch.config.gate.resolve``): a resumed run's own (plus
    flags), else preset + --data + --set + flags. The second ``resolve`` in ``_train`` adds the data."""
    from plsearch.config.gate import resolve
    from plsearch.config.presets import preset_config
    from plsearch.nn.checkpoint import check_resumable, read_checkpoint
    from plsearch.outputs import RUN_FILES, check_out, claim_folder, named_data

    out = Path(args.out)
    check_out(out, inputs=[args.data or None])  # an existing file, or inside the data: refused
    overrides = parse_sets(args.set)
    for flag, key in (("epochs", "train.epochs"), ("image_size", "data.image_size"), ("device", "train.device")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.resume:
        if not (out / "last.pt").is_file():
            raise CLIError(f"nothing to resume: {out} has no last.pt; run without --resume first")
        cfg = RunConfig.from_dict(read_checkpoint(out / "last.pt")["run_config"] or {})
        own = cfg.data.root or "the synthetic set"
        if args.data and (not cfg.data.root or Path(args.data).resolve() != Path(cfg.data.root).resolve()):
            raise CLIError(
                f"--resume continues on the run's own data ({own}), not {args.data}; drop --data, or "
                "train a new run with another --out"
            )
        check_out(out, inputs=named_data(cfg, overrides))
        if getattr(args, "trial", None):
            raise CLIError(
                f"--resume continues the run in {out}, not trial {args.trial}; drop --trial, or train the "
                "trial with another --out"
            )
        resumed = resolve(cfg, overrides)
        _check_same_measurement(cfg, resumed, args, overrides)
        changed = [k for k in sorted(overrides) if k.startswith("model.") and resumed.model != cfg.model]
        if changed:  # the checkpoint's weights would not fit: refuse before anything is written
            raise CLIError(
                f"--resume continues the run's own model; {changed[0]} would change it, drop that "
                "--set or train a new run with another --out"
            )
        from plsearch.nn.model import PLNet

        shapes = {k: tuple(v.shape) for k, v in PLNet.from_config(resumed.model).state_dict().items()}
        check_resumable(out, resumed.model.to_dict(), shapes)  # last.pt and best.pt of this model, before any write
        return resumed, overrides
    if (out / "last.pt").exists():
        raise CLIError(f"{out} already holds a training run; pass --resume to continue it or choose a new --out")
    if args.data and not Path(args.data).is_dir():
        raise CLIError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
    claim_folder(out, "run", targets=RUN_FILES, adopt=("config.yaml", "log.jsonl"), create=False)
    if getattr(args, "trial", None):  # a found config, retrained (at the fidelity the flags and --set give)
        from dataclasses import replace

        from plsearch.config.naming import parse_trial_ref
        from plsearch.infer.artifacts import trial_config

        cfg = trial_config(parse_trial_ref(args.trial))
        if args.data:
            cfg = replace(cfg, data=replace(cfg.data, root=str(args.data)))
        check_out(out, inputs=named_data(cfg, overrides))  # the trial's data, or --data / --set data.root
        return resolve(cfg, overrides), overrides
    cfg = RunConfig(model=preset_config(args.model or "plnet"), data=DataConfig(root=str(args.data)))
    check_out(out, inputs=named_data(overrides))  # --set data.root=...
    return resolve(cfg, overrides), overrides


def _flag_of(path: str, args: argparse.Namespace) -> str:
    """How the user asked for ``path`` on this command line (for the fix in a refusal)."""
    if path == "data.image_size" and args.image_size is not None:
        return "--image-size"
    if path == "data.root" and args.data:
        return "--data"
    return f"--set {path}"


def _check_same_measurement(cfg: RunConfig, resumed: RunConfig, args: argparse.Namespace, overrides: dict) -> None:
    """A resume continues the same measurement: the data, the split and the model the run started with.
    A flag that would change them (``--set data.seed=5``, ``--image-size``, ``--model``) is refused, not
    applied mid-run (a training image scored as test) nor silently ignored."""
    from plsearch.config.gate import changed_measurement, measurement

    diff = changed_measurement(measurement(cfg), measurement(resumed))
    if diff:
        path, old, new = diff
        raise CLIError(
            f"--resume continues the run's own data and split; {path} would change from {old!r} to {new!r}: "
            f"drop {_flag_of(path, args)}, or train a new run with another --out"
        )
    if args.model is None:
        return
    model_sets = {k: v for k, v in overrides.items() if k.startswith("model.")}

    def as_run(name: str) -> Any:  # a preset as this run would hold it: its data decide channels and classes
        from dataclasses import replace

        from plsearch.config.gate import resolve
        from plsearch.config.presets import preset_config
        from plsearch.config.schema import ConfigError

        model = preset_config(name)
        model = replace(model, **{k: getattr(cfg.model, k) for k in ("in_channels", "num_classes", "spatial_dims")})
        try:
            return resolve(RunConfig(model=model, data=cfg.data), model_sets).model
        except ConfigError:  # e.g. that preset's stride does not fit the run's images: not the run's model
            return None

    if as_run(args.model) != resumed.model:
        from plsearch.config.presets import list_presets

        own = next((n for n in list_presets() if as_run(n) == resumed.model), None)
        raise CLIError(
            f"--resume continues the run's own model ({own or 'the one in its config.yaml'}), not --model "
            f"{args.model}: drop --model, or train a new run with another --out"
        )


def _train(argv: Sequence[str] | None) -> int:
    from plsearch.locks import hold_folder
    from plsearch.outputs import check_out, named_data

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "epochs", "image_size")
    check_out(args.out, inputs=named_data(args.data, parse_sets(args.set)))  # before the lock: never in the data
    with hold_folder(args.out, command="train"):  # one writer per run folder, for the whole run
        return _train_held(args)


def _train_held(args: argparse.Namespace) -> int:
    """The training run, while this process holds the run folder's lock (``plsearch.locks``)."""
    from plsearch.config.gate import check_device, resolve
    from plsearch.config.schema import to_yaml
    from plsearch.data.dataset import load_splits, peek
    from plsearch.train.metrics import evaluate_model
    from plsearch.train.run import build_model, run_config

    cfg, overrides = resolve_config(args)  # image size against stride, before the data is read
    device = check_device(cfg.train.device)
    head = peek(cfg.data)  # a volume folder's channels and dims, from the file headers: nothing decoded yet
    if head is not None:
        cfg = resolve(cfg, {k: v for k, v in overrides.items() if k == "model.in_channels"}, data=head)
    from plsearch.graph.memory import check_fits
    from plsearch.outputs import RUN_FILES, claim_folder, record_written

    check_fits(  # before the data is decoded and cached (2D: in_channels may still follow the images)
        cfg.model,
        cfg.data.image_size,
        batch=cfg.train.batch_size,
        training=True,
        device=device,
        dtype_bytes=2 if device.type == "cuda" and cfg.train.amp else 4,
        flag="--image-size",
    )
    splits = load_splits(cfg.data, num_classes=cfg.model.num_classes)
    cfg = resolve(cfg, {k: v for k, v in overrides.items() if k == "model.in_channels"}, data=splits)
    if not len(splits["train"]) or not len(splits["val"]):
        raise CLIError(
            f"{cfg.data.root or 'the synthetic set'} gives {len(splits['train'])} training and "
            f"{len(splits['val'])} validation images; training needs both: add images (at least 2 pairs) "
            "or change data.val_fraction"
        )
    out = Path(args.out)
    claim_folder(out, "run", targets=RUN_FILES, adopt=("config.yaml", "log.jsonl", "last.pt"))
    record_written(out, RUN_FILES)
    (out / "config.yaml").write_text(to_yaml(cfg))
    model = build_model(cfg)  # model initialisation is part of the run's seed
    n_params = sum(p.numel() for p in model.parameters())
    what = (
        "resumed run"
        if args.resume
        else (f"trial {args.trial}" if getattr(args, "trial", None) else args.model or "plnet")
    )
    print(
        f"training {what}: {n_params / 1e6:.3f} M params, "
        f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} train/val/test images at "
        f"{cfg.data.image_size} px on {device}",
        file=sys.stderr,
    )
    result = run_config(cfg, splits, model=model, out_dir=out, resume=args.resume, progress=not args.quiet).fit_result
    print(
        f"best val Dice {result.best_val_dice:.4f} at epoch {result.best_epoch} of {result.epochs_run} "
        f"({result.stopped}, {result.seconds:.1f}s)"
    )
    summary: dict[str, Any] = {
        "best_val_dice": result.best_val_dice,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped": result.stopped,
        "params": n_params,
    }
    if len(splits["test"]):
        test = evaluate_model(
            model,
            splits["test"],
            num_classes=cfg.model.num_classes,
            batch_size=cfg.train.eval_batch_size,
            device=device,
            amp=cfg.train.amp,
        )
        summary["test"] = test
        print(format_metrics(test, f"test metrics (best epoch, {out / 'best.pt'}):"))
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input)."""
    from plsearch.train.fit import NonFiniteLossError

    return run_cli(lambda: _train(argv), user_errors=(NonFiniteLossError,))


if __name__ == "__main__":
    raise SystemExit(main())
