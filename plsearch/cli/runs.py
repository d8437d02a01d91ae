"""``python -m plsearch.runs --out DIR --study NAME``: one worker of a runs study (confirm, fidelity, ablation).

Started by ``--workers N`` of those commands; it takes waiting jobs until none is left and prints
one line per finished run. The storage comes from ``--storage`` or ``$PLSEARCH_STORAGE`` (so a
password stays off the command line), else ``DIR/runs.journal``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from plsearch.cli import Parser, argv_or_sys, run_cli, setup_logging


def run_line(row: dict[str, Any]) -> str:
    """One line per finished run: key, val and test Dice, epochs, seconds."""
    if row.get("fail_reason"):
        return f"run {row['key']:<40} FAIL  [{row['fail_reason']}]"
    return (
        f"run {row['key']:<40} val Dice {row['val_dice']:.4f}  test Dice {row['test_dice']:.4f}"
        f"{'  (degenerate)' if row.get('degenerate') else ''}  epoch {row['best_epoch']}/{row['epochs_run']}"
        f"  {row['seconds']:.1f}s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        from plsearch.studies.runs import open_runs, work

        p = Parser(prog="python -m plsearch.runs", description="Run the waiting jobs of a runs study.")
        p.add_argument("--out", required=True, help="the folder holding runs.journal and runs/")
        p.add_argument("--study", required=True, help="the runs study's name")
        p.add_argument("--storage", help="storage URL [$PLSEARCH_STORAGE, else OUT/runs.journal]")
        p.add_argument("--device", help="train.device for the runs of this worker")
        p.add_argument("--verbose", action="store_true")
        args = p.parse_args(argv_or_sys(argv))
        setup_logging(args.verbose)
        storage = args.storage or os.environ.get("PLSEARCH_STORAGE") or None
        if storage and storage.endswith("runs.journal"):
            storage = None
        runs = open_runs(args.out, args.study, storage=storage)
        work(runs, device=args.device, on_done=lambda r: print(run_line(r), flush=True))
        return 0

    return run_cli(body)
