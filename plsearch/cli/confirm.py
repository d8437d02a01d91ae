"""``python -m plsearch.confirm --out results/NAME``: retrain a search's front and presets with seeds, on test.

    python -m plsearch.confirm --out results/ipl_epl                         # front + presets, 3 seeds
    python -m plsearch.confirm --out results/ipl_epl --trials 3,8,12 --seeds 5 --set train.epochs=60
    python -m plsearch.confirm --out results/isic --folds 5                  # K-fold CV for small data sets
    python -m plsearch.confirm --out results/dsb --device cuda --set data.image_size=224 --plan

Writes ``confirm/confirmed.csv``, ``.md`` and ``.png`` in the study's folder; rerun to resume (no
finished run is repeated). The final fidelity is the space's ``confirm:`` section, then ``--set``.
Every run's best weights are kept (``confirm/artifacts/`` or ``--artifacts PATH``, linked from the
run's trial in the runs study; its result row's ``checkpoint`` loads with ``plsearch.load``). Confirm
has no ``--keep-top``: its runs are the confirmed points (configs x seeds), each one cited.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
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
    from plsearch.config.naming import add_study_args

    p = Parser(prog="python -m plsearch.confirm", description="Confirm a search's front on the test split.")
    add_study_args(p, out_help="the search's results folder, e.g. results/NAME; confirm writes NAME/confirm/")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trials", help="comma-separated trial numbers, e.g. 3,8,12 [the Pareto front]")
    which.add_argument("--front", action="store_true", help="the search's Pareto front (the default)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--seeds", type=int, help="runs per config [the space's confirm.seeds, else 3]")
    runs.add_argument("--folds", type=int, help="K-fold cross-validation over all images instead of seeds")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="final-fidelity value over the confirm: section, e.g. --set train.epochs=60",
    )
    p.add_argument("--no-references", action="store_true", help="do not retrain the presets")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the runs [1]")
    p.add_argument("--device", help="train.device for every run")
    p.add_argument("--devices", help="comma-separated devices, one worker each, e.g. cuda:0,cuda:1")
    p.add_argument("--plan", action="store_true", help="print the runs and their predicted time, run nothing")
    p.add_argument("--tflops", type=float, help="assumed sustained TFLOP/s for --plan [0.03 CPU, 100 CUDA]")
    p.add_argument("--force", action="store_true", help="write into a results folder of another study")
    p.add_argument(
        "--artifacts",
        metavar="PATH",
        help="folder that keeps every run's best weights (e.g. a shared disk; created if missing), recorded "
        "in the runs study [OUT/confirm/artifacts]",
    )
    p.add_argument("--verbose", action="store_true")
    return p


def _trial_numbers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",")]
    if not parts or not all(t.isdigit() for t in parts):
        raise CLIError(f"--trials {text!r} is not a list of trial numbers; write e.g. --trials 3,8,12")
    return [int(t) for t in parts]


def _search_extra(cfg: Any, space: Any) -> dict[str, Any]:
    """The values the search fixed for every trial (data, train, width), read back from a trial's config."""
    searched = {a.path for a in space.axes}
    d = cfg.to_dict()
    extra = {f"{g}.{k}": v for g in ("data", "train") for k, v in d[g].items() if f"{g}.{k}" not in searched}
    if "model.base_width" not in searched:
        extra["model.base_width"] = d["model"]["base_width"]
    return extra


def _body(argv: Sequence[str] | None) -> int:
    with ExitStack() as held:  # the confirm folder's lock, once _confirm takes it, until the run ends
        return _confirm(argv, held)


def _confirm(argv: Sequence[str] | None, held: ExitStack) -> int:
    from plsearch.cli.runs import run_line
    from plsearch.config.gate import parse_sets
    from plsearch.config.naming import study_ref
    from plsearch.report.confirm import markdown, plot_confirmed, write_csv
    from plsearch.report.study import load_study
    from plsearch.search.confirm_section import parse_confirm_section
    from plsearch.search.references import load_references
    from plsearch.search.space import parse_space
    from plsearch.search.storage import parse_storage
    from plsearch.search.study import SPACE_ATTR
    from plsearch.studies.confirm import (
        aggregate,
        confirm_jobs,
        fold_split_files,
        mark_nondominated,
        reference_candidates,
        search_candidates,
        size_objectives,
    )

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "seeds", "folds", "workers", "tflops")
    if args.folds is not None and args.folds < 2:
        raise CLIError(f"--folds must be at least 2, got {args.folds}; pass e.g. --folds 5")
    if args.device and args.devices:
        raise CLIError("--device and --devices both given; use --devices for one worker per device, else --device")
    if args.artifacts is not None:  # before anything is written
        from plsearch.infer.artifacts import check_store_path

        check_store_path(args.artifacts)
    trials = _trial_numbers(args.trials)
    ref = study_ref(args)
    out = ref.folder
    if ref.storage is None and not ((out / "study.db").is_file() or (out / "study.journal").is_file()):
        raise CLIError(
            f"no study in {out} (no study.db or study.journal); pass the --out folder of a search, or "
            "--storage URL --study NAME"
        )
    study = load_study(ref.storage, ref.name, out)
    raw = study.user_attrs.get(SPACE_ATTR)
    if not raw:
        raise CLIError(f"study {study.study_name!r} records no search space; confirm needs a plsearch search")
    space = parse_space(raw, study.study_name)
    section = parse_confirm_section(raw.get("confirm"))
    cands = search_candidates(study, trials)
    if section.references and not args.no_references and space.references:
        cands += reference_candidates(space, _search_extra(cands[0].config, space), load_references(out))
    overrides = {**dict(section.fidelity), **parse_sets(args.set)}
    if args.device:
        overrides["train.device"] = args.device
    devices = [d.strip() for d in args.devices.split(",")] if args.devices else []
    folds_k = args.folds or (section.folds if args.seeds is None else None)
    seeds = args.seeds or section.seeds
    confirm_dir = out / "confirm"
    from plsearch.outputs import check_outs, named_data

    data = named_data(*(c.config for c in cands), overrides)  # every config's data.root, and --set data.root
    check_outs(data, {"--out": confirm_dir, "--artifacts": args.artifacts})  # before the lock and any write
    from plsearch.locks import hold_folder

    held.enter_context(  # one writer of the confirm folder (its --workers take none)
        hold_folder(confirm_dir, command="confirm", flag="", fix="wait for it to end: one confirm of a study at a time")
    )
    folds = []
    if folds_k:
        from plsearch.config.gate import resolve

        folds = fold_split_files(resolve(cands[0].config, overrides), folds_k, confirm_dir / "folds")
    jobs = confirm_jobs(cands, overrides, seeds=seeds, folds=folds)
    runs_desc = f"{folds_k}-fold cross-validation" if folds_k else f"{seeds} seed(s) per config"
    print(
        f"confirm {study.study_name!r}: {len(cands)} configs ({', '.join(c.label for c in cands)}) x {runs_desc} "
        f"= {len(jobs)} runs, out {confirm_dir}",
        flush=True,
    )
    if args.plan:
        import torch

        from plsearch.studies.runplan import plan_lines

        cuda = any(str(x).startswith("cuda") for x in [args.device, *devices]) or (
            args.device is None and not devices and torch.cuda.is_available()
        )
        for line in plan_lines(jobs, (args.tflops or (100.0 if cuda else 0.03)) * 1e12, "cuda" if cuda else "cpu"):
            print(line)
        return 0
    from plsearch.outputs import claim_results

    claim_results(out, study.study_name, storage=ref.storage, force=args.force)
    spec = parse_storage(ref.storage, out) if ref.storage else None
    t0 = time.perf_counter()
    from plsearch.studies.runs import run_jobs

    runs_storage = spec.target if spec is not None and spec.kind == "rdb" else None
    shown = _runs_progress(jobs, confirm_dir, f"{study.study_name}-confirm", runs_storage)

    def on_done(row: dict) -> None:
        shown.write(run_line(row), file=sys.stdout)
        shown.update(1)

    def on_line(i: int, line: str, is_err: bool) -> None:  # a worker process's lines
        if is_err:
            print(f"[w{i}] {line}", file=sys.stderr, flush=True)
            return
        shown.write(f"[w{i}] {line}", file=sys.stdout)
        shown.update(line.startswith("run "))

    try:
        rows = run_jobs(
            jobs,
            confirm_dir,
            f"{study.study_name}-confirm",
            workers=args.workers,
            devices=devices,
            storage=runs_storage,
            on_done=on_done,
            on_line=on_line,
            artifacts=args.artifacts,
        )
    except BaseException:
        shown.close(quiet=True)
        raise
    shown.close()
    items = aggregate(rows, cands)
    sizes = size_objectives(study)
    mark_nondominated(items, sizes)
    write_csv(items, confirm_dir / "confirmed.csv")
    md = markdown(items, study=study.study_name, fidelity=overrides, runs=runs_desc, sizes=sizes)
    (confirm_dir / "confirmed.md").write_text(md)
    front = [{"macs": c.macs, "params": c.params, "val_dice": c.search_val_dice} for c in cands if c.kind == "trial"]
    plot_confirmed(
        items,
        confirm_dir / "confirmed.png",
        search_front=front,
        title=f"{study.study_name}: confirmed on the test split ({runs_desc})",
    )
    print(f"\n{len(rows)} of {len(jobs)} runs finished, {time.perf_counter() - t0:.0f}s this run\n")
    print(md, end="")
    print(
        f"tables: {confirm_dir / 'confirmed.md'}, {confirm_dir / 'confirmed.csv'}; "
        f"plot: {confirm_dir / 'confirmed.png'}"
    )
    return 0


def _runs_progress(jobs: Sequence[Any], folder: Any, name: str, storage: str | None) -> Any:
    """A progress display over the confirm runs (stderr; plain lines in logs), counting those already done."""
    from plsearch.progress import progress
    from plsearch.studies.runs import open_runs, results

    done = len(results(open_runs(folder, name, storage=storage), [j.key for j in jobs]))
    return progress(total=len(jobs), desc="confirm runs", unit="run", initial=done, heartbeat=True)


def main(argv: Sequence[str] | None = None) -> int:
    from plsearch.config.naming import NamingError
    from plsearch.data.dataset import DataError
    from plsearch.report.study import ReportError
    from plsearch.search.space import SearchSpaceError

    return run_cli(lambda: _body(argv), (SearchSpaceError, DataError, NamingError, ReportError))
