"""``python -m plsearch.table --space FILE --table FILE.jsonl.gz``: record a truth table in chunks.

Every config of a fixed plan (sampled, preset, family, nested; stored in ``<table>.configs.json`` on the first
run) trains with ``--seeds`` seeds to the table's top fidelity; each finished run is appended to the table at
once and a rerun skips what it holds. ``--max-cpu-hours H`` runs a chunk that fits; ``--plan`` predicts the
cost; ``--summary`` rewrites ``<table>.md`` (rows, seeds, cost, seed noise) and exits.

    python -m plsearch.table --space search_spaces/ipl_epl_dsb2018.yaml \\
        --table docs/tables/dsb2018.jsonl.gz --max-cpu-hours 2 --workers 2
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, run_cli, setup_logging


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.table", description="Record a truth table of a space, in chunks.")
    p.add_argument("--space", required=True, help="search-space YAML")
    p.add_argument("--table", required=True, help="the table file, NAME.jsonl.gz (plan and summary go beside it)")
    p.add_argument("--data", help="data folder with images/ and masks/ (default: the space's)")
    p.add_argument("--sampled", type=int, default=40, help="configs sampled from the space [40]")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config [3]")
    p.add_argument("--epochs", type=int, help="the table's top fidelity [3x the space's train.epochs]")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the config sample [0]")
    p.add_argument("--no-family", action="store_true", help="leave out the hand-designed unet family")
    p.add_argument("--no-nested", action="store_true", help="leave out the nested PL-Net set")
    p.add_argument("--out", help="folder of the runs study and run folders [results/table-NAME]")
    p.add_argument("--storage", help="storage URL for the runs study [OUT/runs.journal]")
    p.add_argument("--workers", type=int, default=1, help="worker processes [1]")
    p.add_argument("--max-cpu-hours", type=float, help="stop once this much predicted CPU time is submitted")
    p.add_argument("--plan", action="store_true", help="print the predicted cost of what is left and exit")
    p.add_argument("--summary", action="store_true", help="rewrite the summary page and exit")
    p.add_argument("--verbose", action="store_true")
    return p


def _stem(table: Path) -> str:
    name = table.name
    if not name.endswith(".jsonl.gz"):
        raise CLIError(f"--table {table} must end in .jsonl.gz (gzip JSON lines); name it NAME.jsonl.gz")
    return name[: -len(".jsonl.gz")]


def _plan(args: Any, table: Path, plan_path: Path) -> Any:
    from plsearch.search.space import load_space
    from plsearch.studies.table import make_plan, read_plan, write_plan

    stored = read_plan(plan_path)
    space = load_space(args.space)
    if stored is not None:
        if stored.space != space.name:
            raise CLIError(f"{plan_path} is a plan of space {stored.space!r}, not {space.name!r}; use another --table")
        if args.epochs and args.epochs != stored.epochs:
            raise CLIError(
                f"{table} is recorded to epoch {stored.epochs}; --epochs {args.epochs} is another fidelity: "
                "use another --table"
            )
        if args.sample_seed != stored.sample_seed:
            raise CLIError(f"{table} samples with seed {stored.sample_seed}; drop --sample-seed or use another --table")
    extra: dict[str, Any] = {}
    if args.data is not None:
        if not Path(args.data).is_dir():
            raise CLIError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
        extra["data.root"] = str(Path(args.data).resolve())
    grow = stored is None or (
        args.sampled > stored.count("sampled")
        or (not args.no_family and not stored.count("family"))
        or (not args.no_nested and not stored.count("nested"))
    )
    if not grow and stored is not None:
        plan = stored
    else:
        plan = make_plan(
            space,
            sampled=args.sampled,
            family=not args.no_family,
            nested=not args.no_nested,
            seeds=max(args.seeds, stored.seeds if stored else 0),
            epochs=stored.epochs if stored else args.epochs,
            sample_seed=args.sample_seed,
            extra=extra,
            keep=stored,
        )
    if stored is not None and args.seeds > plan.seeds:
        from dataclasses import replace

        plan = replace(plan, seeds=args.seeds)
    if plan != stored:
        write_plan(plan, plan_path)
    return plan


def _body(argv: Sequence[str] | None) -> int:
    from plsearch.studies.record import plan_report, record
    from plsearch.studies.table import read_rows, summary, summary_markdown

    raw = argv_or_sys(argv)
    args = build_parser().parse_args(raw)
    setup_logging(args.verbose)
    check_positive(args, "seeds", "workers", "epochs", "max_cpu_hours")
    if args.sampled < 0:
        raise CLIError(f"--sampled {args.sampled} must be >= 0")
    table = Path(args.table)
    stem = _stem(table)
    plan_path, md_path = table.with_name(stem + ".configs.json"), table.with_name(stem + ".md")
    out = Path(args.out or Path("results") / f"table-{stem}")
    from plsearch.outputs import check_out, named_data
    from plsearch.search.space import load_space

    data = named_data(args.data, load_space(args.space))  # --data, and the space's own data.root
    check_out(out, inputs=data, contains_inputs=False)  # run folders of its own: never holding the data either
    check_out(table.parent, inputs=data, flag="--table")
    keep = ("--space", "--table", "--data", "--sampled", "--seeds", "--epochs", "--sample-seed")
    flags = [f"{k} {shlex.quote(str(getattr(args, k[2:].replace('-', '_'))))}" for k in keep if k in raw]
    flags += [f for f in ("--no-family", "--no-nested") if f in raw]
    command = "python -m plsearch.table " + " ".join(flags)  # what records this table (chunk flags left out)
    if args.summary:
        from plsearch.studies.table import read_plan

        plan = read_plan(plan_path)
        if plan is None:
            raise CLIError(f"{plan_path} does not exist; record the table first (drop --summary)")
    else:
        plan = _plan(args, table, plan_path)
    rows = read_rows(table)
    if args.plan:
        kinds = ", ".join(f"{plan.count(k)} {k}" for k in ("sampled", "preset", "family", "nested"))
        print(f"table {table}: {kinds} configs x {plan.seeds} seeds to epoch {plan.epochs}; {len(rows)} rows recorded")
        for line in plan_report(plan, rows, args.workers):
            print(line)
        return 0
    if not args.summary:
        print(f"recording {table} (runs in {out})", flush=True)
        res = record(
            plan,
            table,
            out,
            workers=args.workers,
            storage=args.storage,
            max_cpu_hours=args.max_cpu_hours,
            say=lambda s: print(s, flush=True),
            on_line=lambda i, line, err: print(f"[w{i}] {line}", file=sys.stderr if err else sys.stdout, flush=True),
        )
        print(
            f"added {res['added']} rows from {res['runs']} runs (~{res['predicted_cpu_hours']:.2f} CPU-h predicted); "
            f"{res['left']} runs left{': rerun the same command to go on' if res['left'] else ''}"
        )
        rows = read_rows(table)
    md_path.write_text(summary_markdown(summary(rows, plan), plan, str(table), command))
    print(f"summary: {md_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from plsearch.data.dataset import DataError
    from plsearch.search.space import SearchSpaceError

    return run_cli(lambda: _body(argv), (SearchSpaceError, DataError))
