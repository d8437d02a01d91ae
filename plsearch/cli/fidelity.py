"""``python -m plsearch.fidelity --space FILE --configs K --low KEY=VALUE ... --high KEY=VALUE ...``

Trains a seeded sample of K configs of the space (plus its preset references) at a low and a high
fidelity and reports how well the low one ranks them: Spearman rho and Kendall tau with bootstrap
95 % intervals, top-k overlap, regret. The high run trains with another seed than the low run
(independent seeds); ``--same-seed`` keeps one seed, so the high run continues the low run and the
figures are a same-run upper bound. Writes ``fidelity.json``, ``fidelity.md`` and
``fidelity.png`` into --out (default ``results/<space>-fidelity``); rerun the same command to resume.

    python -m plsearch.fidelity --space search_spaces/ipl_epl.yaml --configs 24 \\
        --low train.epochs=10 --high train.epochs=60 --workers 2
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from plsearch.cli import (
    CLIError,
    Parser,
    argv_or_sys,
    check_positive,
    run_cli,
    setup_logging,
)


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.fidelity", description="Does a low fidelity rank configs like a high one?")
    p.add_argument("--space", required=True, help="search-space YAML")
    p.add_argument("--data", help="data folder with images/ and masks/ (default: the synthetic set)")
    p.add_argument("--configs", type=int, default=24, help="sampled configs, presets not counted [24]")
    p.add_argument(
        "--low",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="the low fidelity's overrides, e.g. train.epochs=10 (default: the space's own)",
    )
    p.add_argument(
        "--high",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        required=True,
        help="the high fidelity's overrides, e.g. train.epochs=60",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a value for both fidelities")
    p.add_argument(
        "--high-metric",
        choices=["test_dice", "val_dice"],
        default="test_dice",
        help="what the high run is judged by [test_dice: held-out]",
    )
    p.add_argument(
        "--same-seed",
        action="store_true",
        help="train the high run with the low run's train.seed: measures a continued run (the high run's "
        "first epochs are the low run), a same-run upper bound [default: independent seeds, high = low + 1]",
    )
    p.add_argument("--no-references", action="store_true", help="leave the space's presets out")
    p.add_argument("--seed", type=int, default=0, help="sampling seed [0]")
    p.add_argument("--out", help="output folder [results/<space>-fidelity]")
    p.add_argument("--storage", help="storage URL for the runs study [OUT/runs.journal]")
    p.add_argument("--workers", type=int, default=1, help="worker processes [1]")
    p.add_argument("--device", help="train.device for every run")
    p.add_argument("--devices", help="comma-separated devices, one worker each")
    p.add_argument("--plan", action="store_true", help="print the runs' predicted time and exit")
    p.add_argument("--tflops", type=float, help="assumed sustained TFLOP/s for --plan [0.03 CPU, 100 CUDA]")
    p.add_argument("--verbose", action="store_true")
    return p


def _sets(items: Sequence[str], flag: str, space: Any) -> dict[str, Any]:
    from plsearch.config.gate import parse_sets

    values = parse_sets(items)
    searched = {a.path for a in space.axes} & set(values)
    if searched:
        raise CLIError(
            f"{flag} {min(searched)} fixes a path the space searches; choose a fidelity knob "
            "(train.epochs, data.image_size, ...)"
        )
    return values


def _body(argv: Sequence[str] | None) -> int:
    with ExitStack() as held:  # the --out folder's lock, once _fidelity takes it, until the run ends
        return _fidelity(argv, held)


def _fidelity(argv: Sequence[str] | None, held: ExitStack) -> int:
    from plsearch.cli.runs import run_line
    from plsearch.search.space import load_space
    from plsearch.studies.fidelity import FidelityConfig, fidelity_jobs, write_outputs
    from plsearch.studies.runs import run_jobs

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "configs", "workers", "tflops")
    if args.device and args.devices:
        raise CLIError("--device and --devices both given; use --devices for one worker per device, else --device")
    space = load_space(args.space)
    extra = _sets(args.set, "--set", space)
    if args.data is not None:
        if not Path(args.data).is_dir():
            raise CLIError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
        extra["data.root"] = str(Path(args.data).resolve())
    devices = [d.strip() for d in args.devices.split(",")] if args.devices else []
    if args.device:
        extra["train.device"] = args.device
    low, high = _sets(args.low, "--low", space), _sets(args.high, "--high", space)
    if low == high:
        raise CLIError("--low and --high are the same fidelity; give --high a larger train.epochs or image size")
    out = Path(args.out or Path("results") / f"{space.name}-fidelity")
    from plsearch.outputs import check_outs, named_data
    from plsearch.search.storage import parse_storage

    store = parse_storage(args.storage, out).path if args.storage else None  # a journal or SQLite file
    check_outs(named_data(extra, low, high, space), {"--out": out}, {"--storage": store})  # before any write
    fc = FidelityConfig(
        low=low,
        high=high,
        configs=args.configs,
        seed=args.seed,
        references=not args.no_references,
        extra=extra,
        high_metric=args.high_metric,
        same_seed=args.same_seed,
    )
    jobs = fidelity_jobs(space, fc)
    print(
        f"fidelity check of {args.space}: {args.configs} sampled configs"
        f"{' + ' + str(len(space.references)) + ' presets' if fc.references else ''} x (low, high) = {len(jobs)} "
        f"runs, out {out}",
        flush=True,
    )
    if args.plan:
        from plsearch.studies.runplan import plan_lines

        cuda = any(str(d).startswith("cuda") for d in [args.device, *devices])
        for line in plan_lines(jobs, (args.tflops or (100.0 if cuda else 0.03)) * 1e12, "cuda" if cuda else "cpu"):
            print(line)
        return 0
    from plsearch.locks import hold_folder

    held.enter_context(hold_folder(out, command="fidelity"))  # one writer; its --workers take none
    t0 = time.perf_counter()
    rows = run_jobs(
        jobs,
        out,
        f"{space.name}-fidelity",
        workers=args.workers,
        devices=devices,
        storage=args.storage,
        on_done=lambda r: print(run_line(r), flush=True),
    )
    stats = write_outputs(rows, out, fc, title=space.name)
    k, r = stats["kendall"], stats["spearman"]
    print(
        f"\n{stats['n']} configs paired, {time.perf_counter() - t0:.0f}s this run; Kendall tau {k['value']:.3f} "
        f"[{k['ci95'][0]:.3f}, {k['ci95'][1]:.3f}], Spearman rho {r['value']:.3f} [{r['ci95'][0]:.3f}, "
        f"{r['ci95'][1]:.3f}] (95 % bootstrap); {stats['reading']}"
    )
    print(f"tables: {out / 'fidelity.md'}, {out / 'fidelity.json'}; plot: {out / 'fidelity.png'}")
    if stats["missing"]:
        print(f"not paired (failed or unfinished): {', '.join(stats['missing'])}; rerun to resume", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from plsearch.data.dataset import DataError
    from plsearch.search.space import SearchSpaceError

    return run_cli(lambda: _body(argv), (SearchSpaceError, DataError))
