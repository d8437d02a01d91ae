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
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, run_cli, setup_logging
from plsearch.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="", help="data folder with images/ and masks/ (default: synthetic set)")
    p.add_argument("--model", default="plnet", help="preset: plnet, plnet-small, bionet, unet [plnet]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set model.ocs=0.5 --set train.lr=3e-4")
    p.add_argument("--out", required=True, help="run folder to write (must not hold a run unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--image-size", type=int, help="data.image_size")
    p.add_argument("--device", help="train.device: auto, cpu, cuda, cuda:N [auto]")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def qualify_key(key: str) -> str:
    """``ocs`` -> ``model.ocs`` when exactly one config section has that field."""
    if "." in key:
        return key
    owners = [name for name, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if len(owners) == 1:
        return f"{owners[0]}.{key}"
    if len(owners) > 1:
        raise ConfigError(f"key {key!r} is in several sections; write {' or '.join(o + '.' + key for o in owners)}")
    raise ConfigError(f"unknown key {key!r}; use model.<field>, data.<field> or train.<field> (e.g. model.ocs=0.5)")


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    from plsearch.config import parse_scalar

    out: dict[str, Any] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--set {item!r} is not KEY=VALUE; write e.g. --set model.ocs=0.5")
        out[qualify_key(key.strip())] = parse_scalar(val.strip())
    return out


def resolve_config(args) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config: a resumed run's own (plus flags), else preset + --data + --set + flags."""
    from plsearch.checkpoint import read_checkpoint
    from plsearch.config import apply_overrides
    from plsearch.presets import preset_config

    out = Path(args.out)
    overrides = parse_sets(args.set)
    for flag, key in (("epochs", "train.epochs"), ("image_size", "data.image_size"), ("device", "train.device")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.resume:
        if not (out / "last.pt").is_file():
            raise CLIError(f"nothing to resume: {out} has no last.pt; run without --resume first")
        cfg = RunConfig.from_dict(read_checkpoint(out / "last.pt")["run_config"] or {})
        resumed = apply_overrides(cfg, overrides)
        changed = [k for k in sorted(overrides) if k.startswith("model.") and resumed.model != cfg.model]
        if changed:  # the checkpoint's weights would not fit: refuse before anything is written
            raise CLIError(f"--resume continues the run's own model; {changed[0]} would change it, drop that "
                           "--set or train a new run with another --out")
        return resumed, overrides
    if (out / "last.pt").exists():
        raise CLIError(f"{out} already holds a training run; pass --resume to continue it or choose a new --out")
    if args.data and not Path(args.data).is_dir():
        raise CLIError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
    cfg = RunConfig(model=preset_config(args.model), data=DataConfig(root=str(args.data)))
    return apply_overrides(cfg, overrides), overrides


def format_metrics(metrics: dict[str, float], title: str = "") -> str:
    """A two-column table: per-image mean and pooled (global) value of every figure."""
    names = [k for k in metrics if not k.startswith("global_") and isinstance(metrics[k], float)]
    lines = [title] if title else []
    lines.append(f"{'metric':<14}{'per-image':>10}{'global':>10}")
    for k in names:
        g = metrics.get(f"global_{k}")
        lines.append(f"{k:<14}{metrics[k]:>10.4f}" + (f"{g:>10.4f}" if g is not None else ""))
    if "images" in metrics:
        lines.append(f"({metrics['images']} images; per-image figures are means over images)")
    return "\n".join(lines)


def _train(argv: Sequence[str] | None) -> int:
    import torch

    from plsearch.config import to_yaml
    from plsearch.data import load_splits
    from plsearch.metrics import evaluate_model
    from plsearch.model import PLNet
    from plsearch.train import fit, resolve_device

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "epochs", "image_size")
    cfg, overrides = resolve_config(args)
    stride = cfg.model.total_stride()
    if cfg.data.image_size < stride:
        raise CLIError(f"data.image_size={cfg.data.image_size} is smaller than the network's total stride {stride} "
                       f"(depth={cfg.model.depth}); use --image-size {stride} or more, or lower model.depth")
    device = resolve_device(cfg.train.device)
    splits = load_splits(cfg.data, num_classes=cfg.model.num_classes)
    channels = splits["train"].channels
    if channels != cfg.model.in_channels:
        if "model.in_channels" in overrides:
            raise CLIError(f"model.in_channels={cfg.model.in_channels} but the images have {channels} channels; "
                           f"drop the override or set data.channels")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, in_channels=channels))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    torch.manual_seed(cfg.train.seed)  # model initialisation is part of the run's seed
    model = PLNet.from_config(cfg.model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training {args.model if not args.resume else 'resumed run'}: {n_params / 1e6:.3f} M params, "
          f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} train/val/test images at "
          f"{cfg.data.image_size} px on {device}", file=sys.stderr)
    result = fit(model, splits["train"], splits["val"], cfg.train, num_classes=cfg.model.num_classes, out_dir=out,
                 run_config=cfg, resume=args.resume, progress=not args.quiet)
    print(f"best val Dice {result.best_val_dice:.4f} at epoch {result.best_epoch} of {result.epochs_run} "
          f"({result.stopped}, {result.seconds:.1f}s)")
    summary: dict[str, Any] = {"best_val_dice": result.best_val_dice, "best_epoch": result.best_epoch,
                               "epochs_run": result.epochs_run, "stopped": result.stopped, "params": n_params}
    if len(splits["test"]):
        test = evaluate_model(model, splits["test"], num_classes=cfg.model.num_classes,
                              batch_size=cfg.train.eval_batch_size, device=device, amp=cfg.train.amp)
        summary["test"] = test
        print(format_metrics(test, f"test metrics (best epoch, {out / 'best.pt'}):"))
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input)."""
    from plsearch.train import NonFiniteLossError

    return run_cli(lambda: _train(argv), user_errors=(NonFiniteLossError,))


if __name__ == "__main__":
    raise SystemExit(main())
