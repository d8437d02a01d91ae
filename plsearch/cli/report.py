"""``python -m plsearch.report``: redraw a search's tables and plots from its storage (no training).

python -m plsearch.report --out results/ipl_epl                       # reads results/ipl_epl/study.db
python -m plsearch.report --study ipl_epl --storage sqlite:///x.db --out report/
"""

from __future__ import annotations

import os
from typing import Sequence

from plsearch.cli import Parser, argv_or_sys, run_cli, setup_logging
from plsearch.config.naming import STORAGE_ENV, add_study_args


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.report", description="Redraw a search's Pareto table and plots.")
    add_study_args(
        p, out_help="folder to write (and, without --storage, the one holding study.db)", storage_env=False
    )  # $PLSEARCH_STORAGE only when --out is not given
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a results folder that belongs to another study (its tables and plots are replaced)",
    )
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        from plsearch.report.study import load_study, write_report
        from plsearch.search.pareto import beaten_line, pareto_markdown
        from plsearch.search.records import study_metric_names
        from plsearch.search.references import load_references

        args = build_parser().parse_args(argv_or_sys(argv))
        setup_logging(args.verbose)
        storage = args.storage or (os.environ.get(STORAGE_ENV) if args.out is None else None)
        if args.out is None and not storage:
            from plsearch.cli import CLIError

            raise CLIError("nothing to report on; pass --out DIR (a search's output folder) or --storage URL")
        study = load_study(storage, args.study, args.out)
        from plsearch.outputs import claim_results, safe_child

        out = args.out or safe_child("results", study.study_name, what="study name")  # a stored name may be a path
        claim_results(out, study.study_name, storage=storage, force=args.force)  # never another study's folder
        records, rows, plots = write_report(study, out)
        print(f"study {study.study_name}: {len(records)} finished trial(s); Pareto front:")
        print(pareto_markdown(rows), end="")
        objectives = list(zip(study_metric_names(study), [d.name.lower() for d in study.directions]))
        print(beaten_line(rows, load_references(out), objectives), end="")
        for name, where in plots.items():
            print(f"{name}: {where}")
        return 0

    return run_cli(body)
