"""Train PL-Net-dagger and U-Net on DSB2018 nuclei at a CPU-sized protocol; write a Markdown table.

The paper's protocol (224 px, Adam 1e-4, batch 16, up to 200 epochs, early stopping 20) takes
hours per epoch on a 2-core CPU, so the default here is reduced: small images, a fixed number of
epochs, a higher learning rate, and (see ``--set-plnet`` / ``--set-unet``) cheaper variants of the
two presets. Everything else is the library's own code path (``load_splits`` with the data set's
``split_80_20.csv``, validation carved from train, ``fit``, ``evaluate_model``).

    python benchmarks/train_dsb2018.py                       # CPU protocol, ~10-15 min
    python benchmarks/train_dsb2018.py --size 224 --epochs 200 --lr 1e-4 --patience 20 \
        --set-plnet "" --set-unet "" --threads 0             # the paper's protocol (GPU)

Writes OUT/results.md, OUT/results.json, OUT/val_dice.png and one run folder per model
(log.jsonl, best.pt, last.pt, curves.png). OUT defaults to results/dsb2018_<size>px (gitignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plsearch.config.gate import resolve  # noqa: E402
from plsearch.config.presets import preset_config  # noqa: E402
from plsearch.config.schema import DataConfig, RunConfig, TrainConfig  # noqa: E402
from plsearch.data.dataset import load_splits  # noqa: E402
from plsearch.graph.wiring import estimate  # noqa: E402
from plsearch.train.metrics import evaluate_model  # noqa: E402
from plsearch.train.run import build_model, run_config  # noqa: E402

LABELS = {"plnet-small": "PL-Net\u2020", "plnet": "PL-Net", "unet": "U-Net", "bionet": "BiO-Net"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "dsb2018"))
    p.add_argument("--out", help="output folder [results/dsb2018_<size>px]")
    p.add_argument("--size", type=int, default=64, help="image side in pixels [64]")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--patience", type=int, default=0, help="early stopping (0: fixed epochs) [0]")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate [1e-3; paper 1e-4]")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--models", default="plnet-small,unet", help="comma-separated presets")
    p.add_argument("--set-plnet", default="plan=bionet",
                   help="model overrides for PL-Net presets, comma-separated [plan=bionet: same params, 3.4x fewer MACs]")
    p.add_argument("--set-unet", default="base_width=32", help="model overrides for unet [base_width=32]")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (0: torch default). 1 is fastest when other processes share the cores")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (0: all)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def model_overrides(name: str, args: argparse.Namespace) -> list[str]:
    text = args.set_unet if name == "unet" else args.set_plnet
    return [f"model.{kv.strip()}" for kv in text.split(",") if kv.strip()]


def plot_val_dice(runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, history in runs.items():
        ax.plot([r["epoch"] for r in history], [r["val_dice"] for r in history], marker=".", label=label)
    ax.set(xlabel="epoch", ylabel="validation Dice", title="DSB2018 (nuclei)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or REPO / "results" / f"dsb2018_{args.size}px")
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    data_cfg = DataConfig(root=args.data, image_size=args.size, seed=args.seed)
    t0 = time.perf_counter()
    splits = load_splits(data_cfg)
    load_s = time.perf_counter() - t0
    print(f"data: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} at {args.size} px ({load_s:.1f}s)", flush=True)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                            seed=args.seed, device=args.device, max_steps_per_epoch=args.max_steps,
                            num_threads=args.threads)
    rows, curves = [], {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        overrides = model_overrides(name, args)
        cfg = resolve(RunConfig(model=preset_config(name), data=data_cfg, train=train_cfg), overrides)
        model = build_model(cfg)  # seeded with cfg.train.seed (args.seed)
        params = sum(p.numel() for p in model.parameters())
        macs = estimate(cfg.model, (args.size, args.size)).macs
        print(f"== {name} {overrides}: {params / 1e6:.2f} M params, {macs / 1e9:.2f} GMACs at {args.size} px", flush=True)
        result = run_config(cfg, splits, model=model, out_dir=out / name, progress=True).fit_result
        test = evaluate_model(model, splits["test"], batch_size=cfg.train.eval_batch_size)
        sec_epoch = sum(r["seconds"] for r in result.history) / max(1, len(result.history))
        # training FLOP/s, approximately: forward + backward ~ 3 forward passes, 2 FLOP per MAC
        gflops = 6 * macs * len(splits["train"]) / sec_epoch / 1e9 if not args.max_steps else float("nan")
        label = LABELS.get(name, name) + (f" ({', '.join(o.removeprefix('model.') for o in overrides)})" if overrides else "")
        rows.append({"model": label, "preset": name, "overrides": overrides, "params": params, "macs": macs,
                     "epochs": result.epochs_run, "best_epoch": result.best_epoch,
                     "best_val_dice": result.best_val_dice, "seconds_per_epoch": sec_epoch,
                     "train_gflops": gflops, "test": test})
        curves[label] = result.history
        print(f"   test Dice {test['dice']:.4f} IoU {test['iou']:.4f} ({sec_epoch:.0f} s/epoch)", flush=True)
    write_report(out, args, rows, splits, load_s)
    plot_val_dice(curves, out / "val_dice.png")
    print(f"wrote {out / 'results.md'}")
    return 0


def write_report(out: Path, args: argparse.Namespace, rows: list[dict], splits: dict, load_s: float) -> None:
    cmd = " ".join(["python benchmarks/train_dsb2018.py", *(shlex.quote(a) for a in args.argv)])
    lines = [
        f"# DSB2018 nuclei, {args.size} px, {args.epochs} epochs (CPU protocol)",
        "",
        f"Command: `{cmd}`  ",
        f"Data: {len(splits['train'])} train / {len(splits['val'])} val / {len(splits['test'])} test "
        "(split_80_20.csv; val carved from train). Adam lr "
        f"{args.lr:g}, batch {args.batch_size}, augmentation on, fixed epochs (patience {args.patience}), "
        f"seed {args.seed}, torch {torch.__version__}, {args.threads or torch.get_num_threads()} thread(s), "
        f"{platform.processor() or platform.machine()}.  ",
        "Test figures are per-image means (threshold 0.5 on the fused output of the best-val-Dice epoch); "
        "global Dice pools all test pixels.",
        "",
        "| model | params | GMACs | s/epoch | ~GFLOP/s | best val Dice (epoch) | test IoU | test Dice | Acc | Sens | Spec | global Dice |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e9:.2f} | {r['seconds_per_epoch']:.0f} | "
            f"{r['train_gflops']:.0f} | {r['best_val_dice']:.4f} ({r['best_epoch']}) | {t['iou']:.4f} | "
            f"{t['dice']:.4f} | {t['acc']:.4f} | {t['sens']:.4f} | {t['spec']:.4f} | {t['global_dice']:.4f} |"
        )
    lines += ["", "Curves: `val_dice.png` (both models), `<preset>/curves.png` (loss and val Dice per epoch).",
              "GMACs: one forward pass of one image (`plsearch.graph.wiring.estimate`); ~GFLOP/s: "
              "6 x MACs x train images / (s/epoch), validation time included."]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
