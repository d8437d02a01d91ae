"""``python -m plsearch.search --space FILE``: search a YAML space with Optuna; rerun to resume.

    python -m plsearch.search --space search_spaces/ipl_epl.yaml            # synthetic data, CPU-sized
    python -m plsearch.search --space search_spaces/ipl_epl.yaml --data ../shared/data/dsb2018 \\
        --set data.image_size=224 --set train.epochs=100 --set model.base_width=32 --device cuda

Prints one line per finished trial and the Pareto table; writes study.db, trials.jsonl,
pareto.csv/.md, pareto/trial_<n>.yaml and PNG plots into --out (default results/<study-name>).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from plsearch.cli import CLIError, Parser, argv_or_sys, run_cli, setup_logging


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.search", description="Search a PL-Net design space with Optuna.")
    p.add_argument("--space", required=True, help="search-space YAML (see search_spaces/)")
    p.add_argument("--data", help="data folder with images/ and masks/ (default: the synthetic set)")
    p.add_argument("--n-trials", type=int, help="finished trials wanted in total, resumed ones included "
                   "(default: the space's n_trials)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--storage", help="Optuna storage: sqlite:///PATH.db, postgresql://..., or PATH.log (journal) "
                   "[OUT/study.db]")
    p.add_argument("--study-name", help="study name [the space file's name]")
    p.add_argument("--out", help="output folder [results/<study-name>]")
    p.add_argument("--device", help="train.device for every trial: auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, help="sampler and training seed [the space's seed]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a config value for every trial and reference, e.g. --set train.epochs=50")
    p.add_argument("--no-references", action="store_true", help="do not train the preset reference points")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (tables and records still written)")
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def trial_line(rec: dict[str, Any]) -> str:
    """One progress line: number, params summary, dice, params, MACs, state, seconds."""
    from plsearch.search.records import fmt_count, params_summary

    prof, metrics = rec.get("profile") or {}, rec.get("metrics") or {}
    dice = metrics.get("val_dice")
    if dice is None and rec.get("val_dice_curve"):
        dice = rec["val_dice_curve"][-1]
    state = rec["state"]
    if state == "COMPLETE" and not rec.get("feasible"):
        state = "INFEASIBLE"
    if rec.get("duplicate_of") is not None:
        state += f" (= trial {rec['duplicate_of']})"
    reason = f"  [{rec['fail_reason']}]" if rec.get("fail_reason") and state != "COMPLETE" else ""
    secs = rec.get("seconds")
    return (f"trial {rec['number']:>3}  {params_summary(rec['params'], 96):<96}  dice {_fmt(dice)}  "
            f"params {fmt_count(prof.get('params')):>6}  MACs {fmt_count(prof.get('macs')):>6}  {state:<10} "
            f"{'-' if secs is None else f'{secs:.1f}'}s{reason}")


def _extra(args: Any, space: Any) -> dict[str, Any]:
    from plsearch.cli import parse_device
    from plsearch.cli.train import parse_sets

    extra = parse_sets(args.set)
    searched = {a.path for a in space.axes}
    clash = sorted(set(extra) & searched)
    if clash:
        raise CLIError(f"--set {clash[0]} fixes a path the space searches; remove it from the space or from --set")
    if args.data is not None:
        if not Path(args.data).is_dir():
            raise CLIError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
        extra["data.root"] = str(args.data)
    if args.device is not None:
        parse_device(args.device)
        extra["train.device"] = args.device
    from plsearch.search.space import _check_value

    for k, v in extra.items():
        extra[k] = _check_value(k, v)
    return extra


def _search(argv: Sequence[str] | None) -> int:
    import time

    from plsearch.search.records import pareto_markdown
    from plsearch.search.runner import run_search
    from plsearch.search.space import load_space

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    for flag in ("n_trials", "timeout"):
        v = getattr(args, flag)
        if v is not None and v <= 0:
            raise CLIError(f"--{flag.replace('_', '-')} must be positive, got {v}")
    space = load_space(args.space)
    extra = _extra(args, space)
    name = args.study_name or space.name
    out = Path(args.out or Path("results") / name)
    n_trials = args.n_trials or space.n_trials
    print(f"study {name!r}: {n_trials} trials of {args.space} ({space.sampler}, objectives "
          f"{', '.join(f'{o.direction[:3]} {o.name}' for o in space.objectives)}), out {out}", flush=True)
    t0 = time.perf_counter()

    def on_reference(ref: str, rec: dict, cached: bool) -> None:
        m = rec.get("metrics") or {}
        from plsearch.search.records import fmt_count

        took = "cached" if cached else f"{rec['seconds']:.1f}s"
        print(f"reference {ref:<12} dice {_fmt(m.get('val_dice'))}  params {fmt_count(rec['profile']['params']):>6}"
              f"  MACs {fmt_count(rec['profile']['macs']):>6}  {took}"
              + (f"  [{rec['fail_reason']}]" if rec.get("fail_reason") else ""), flush=True)

    result = run_search(space, out_dir=out, storage=args.storage, study_name=name, n_trials=n_trials,
                        timeout=args.timeout, seed=args.seed, extra=extra, references=not args.no_references,
                        plots=not args.no_plots, on_trial=lambda r: print(trial_line(r), flush=True),
                        on_reference=on_reference, on_event=lambda m: print(m, flush=True))
    n_done = sum(1 for r in result.records if not r.get("requeued"))
    print(f"\n{n_done} finished trial(s), {result.ran} this run, {time.perf_counter() - t0:.0f}s. Pareto front "
          f"(validation; {', '.join(space.metric_names)}):")
    print(pareto_markdown(result.pareto), end="")
    for what, where in result.plots.items():
        print(f"{what}: {where}")
    print(f"records: {out / 'trials.jsonl'}; Pareto configs: {out / 'pareto'}/trial_<n>.yaml; rerun the same "
          "command to add trials (--n-trials) or resume")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from plsearch.data import DataError
    from plsearch.search.runner import SearchError
    from plsearch.search.space import SearchSpaceError

    code = run_cli(lambda: _search(argv), (SearchSpaceError, SearchError, DataError))
    sys.stdout.flush()
    return code
