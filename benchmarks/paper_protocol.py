"""PL-Net on DSB2018 under the paper's protocol, 3 seeds, test split: against the paper's Table 4.

The protocol: 224x224, Table 1's resolution plan, Dice loss per stage, Adam 1e-4, batch 16, up to
200 epochs with early stopping after 20 without a better validation Dice, augmentation on; the
data set's 80/20 split with validation carved from train. Each seed is a ``plsearch.studies.runs`` job
(resumable, ``--workers``/``--devices``); the best-validation weights are evaluated on the test split.
A GPU job: ``--plan`` prints the predicted time first.

    python benchmarks/paper_protocol.py --device cuda --plan       # predicted GPU time, runs nothing
    python benchmarks/paper_protocol.py --device cuda              # 3 seeds; rerun to resume

Rows go to ``docs/bench/paper_protocol_<data>_<model>.jsonl`` (committed; a rerun skips finished seeds)
and the table to the ``.md`` beside it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plsearch.config.gate import resolve  # noqa: E402
from plsearch.config.schema import RunConfig  # noqa: E402
from plsearch.studies.runs import Job, export_jsonl, read_jsonl, run_jobs  # noqa: E402

PAPER = {("dsb2018", "plnet"): {"iou": 86.14, "dice": 92.13}}  # Table 4, Nuclei (%)
PROTOCOL = {"data.image_size": 224, "train.batch_size": 16, "train.epochs": 200, "train.patience": 20,
            "train.lr": 1e-4, "train.augment": True, "train.max_steps_per_epoch": 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "dsb2018"))
    p.add_argument("--model", default="plnet")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", help="train.device [auto]")
    p.add_argument("--devices", help="one worker per device, e.g. cuda:0,cuda:1")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--plan", action="store_true", help="print the predicted time and exit")
    p.add_argument("--tflops", type=float, default=100.0, help="assumed sustained TFLOP/s for --plan [100]")
    p.add_argument("--out", help="runs folder [results/paper_protocol_<data>_<model>]")
    args = p.parse_args(argv)
    from plsearch.config.gate import parse_sets
    from plsearch.config.presets import preset_config

    name = Path(args.data).name
    over = {**PROTOCOL, "data.root": str(Path(args.data).resolve()), **parse_sets(args.set)}
    if args.device:
        over["train.device"] = args.device
    base = resolve(RunConfig(model=preset_config(args.model)), over)
    jobs = [Job(f"{args.model}/seed_{s}", resolve(base, {"train.seed": s}), group=args.model,
                info={"seed": s}) for s in range(args.seeds)]
    if args.plan:
        from plsearch.studies.runplan import plan_lines

        for line in plan_lines(jobs, args.tflops * 1e12, args.device or "the device"):
            print(line)
        return 0
    table = REPO / "docs" / "bench" / f"paper_protocol_{name}_{args.model}.jsonl"
    done = {r["key"]: r for r in read_jsonl(table)}
    todo = [j for j in jobs if j.key not in done]
    devices = [d.strip() for d in args.devices.split(",")] if args.devices else []
    for row in run_jobs(todo, args.out or REPO / "results" / f"paper_protocol_{name}_{args.model}",
                        f"paper_protocol_{name}_{args.model}", workers=args.workers, devices=devices):
        done[row["key"]] = row
    export_jsonl(list(done.values()), table)
    rows = [r for r in done.values() if not r.get("fail_reason")]
    ref = PAPER.get((name, args.model), {})

    def ms(k: str) -> str:
        v = [100 * r[k] for r in rows]
        if not v:
            return "-"
        m = sum(v) / len(v)
        sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
        return f"{m:.2f} ± {sd:.2f}"

    md = (f"{args.model} on {name}, the paper's protocol, {len(rows)} seed(s), test split\n\n"
          "| | test IoU % | test Dice % | epochs (best) |\n|---|---|---|---|\n"
          f"| plsearch | {ms('test_iou')} | {ms('test_dice')} | "
          f"{', '.join(str(r['best_epoch']) + '/' + str(r['epochs_run']) for r in rows)} |\n"
          f"| paper (Table 4) | {ref.get('iou', '-')} | {ref.get('dice', '-')} | |\n")
    table.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
