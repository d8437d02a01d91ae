"""``python -m plsearch.search --space FILE``: search a YAML space with Optuna; rerun to resume.

    python -m plsearch.search --space search_spaces/ipl_epl.yaml            # synthetic data, CPU-sized
    python -m plsearch.search --space search_spaces/ipl_epl.yaml --data ../shared/data/dsb2018 \\
        --set data.image_size=224 --set train.epochs=100 --set model.base_width=32 --device cuda
    python -m plsearch.search --space ... --workers 4 --devices cuda:0,cuda:1,cuda:2,cuda:3   # one per GPU
    PLSEARCH_STORAGE=postgresql://me@db:5432/plsearch python -m plsearch.search --space ...  # on each machine

Prints one line per finished trial and the Pareto table; writes study.db (one worker) or
study.journal (several), trials.jsonl, pareto.csv/.md, pareto/trial_<n>.yaml and PNG plots into
--out (default results/<study-name>). ``--workers N`` starts N worker processes that share the
study and finish exactly --n-trials trials between them; their lines are prefixed ``[wI]``.
Progress (references, then trials, with the time left) goes to stderr: a bar on a terminal, plain
lines in logs (``plsearch.progress``). Each trained trial's and reference's best weights are kept in
OUT/artifacts (or ``--artifacts PATH``), bounded to the Pareto set + ``--keep-top`` trials.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, check_seed, run_cli, setup_logging
from plsearch.config.naming import study_name_arg
from plsearch.infer.artifacts import DEFAULT_KEEP_TOP


def build_parser() -> Parser:
    p = Parser(prog="python -m plsearch.search", description="Search a PL-Net design space with Optuna.")
    p.add_argument("--space", required=True, help="search-space YAML (see search_spaces/)")
    p.add_argument("--data", help="data folder with images/ and masks/ (default: the synthetic set)")
    p.add_argument(
        "--n-trials",
        type=int,
        help="finished trials wanted in total, resumed ones included (default: the space's n_trials)",
    )
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument(
        "--storage",
        help="Optuna storage: PATH.journal (several processes, one machine), "
        "sqlite:///PATH.db (one process) or postgresql://USER@HOST:PORT/DB (several machines; keep the "
        "password in ~/.pgpass) [$PLSEARCH_STORAGE, else OUT/study.db or OUT/study.journal]",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes on this machine sharing the study [one per "
        "--devices entry; on a CPU with small trials one per core (4+ trials each, one thread each); "
        "else 1]",
    )
    p.add_argument(
        "--devices",
        help="comma-separated devices, one worker each, round-robin when --workers is larger, e.g. cuda:0,cuda:1",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        help="seconds between heartbeats on a database "
        "storage; a trial without one for twice that is failed and re-queued [60]",
    )
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set in the processes --workers starts
    p.add_argument("--study", "--study-name", dest="study", type=study_name_arg, help="study name [the space's name]")
    p.add_argument("--out", help="output folder [results/<study>]")
    p.add_argument("--device", help="train.device for every trial: auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, help="sampler and training seed [the space's seed]")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a config value for every trial and reference, e.g. --set train.epochs=50",
    )
    p.add_argument("--no-references", action="store_true", help="do not train the preset reference points")
    p.add_argument(
        "--artifacts",
        metavar="PATH",
        help="folder that keeps trained weights (e.g. a shared disk; created if missing), recorded in the "
        "study so plsearch.load('results/NAME:N') and --trial find it [the study's, else OUT/artifacts]",
    )
    p.add_argument(
        "--keep-top",
        type=int,
        metavar="K",
        help=f"keep the weights of the Pareto set and of the top K feasible trials by the first objective; "
        f"remove the others' (0: the Pareto set only) [{DEFAULT_KEEP_TOP}]",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (tables and records still written)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a results folder that belongs to another study (its tables and plots are replaced)",
    )
    p.add_argument("--verbose", action="store_true", help="log at INFO level")
    return p


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def trial_line(rec: dict[str, Any]) -> str:
    """One progress line: number, params summary, dice, params, MACs, state, seconds."""
    from plsearch.search.pareto import fmt_count, params_summary

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
    return (
        f"trial {rec['number']:>3}  {params_summary(rec['params'], 96):<96}  dice {_fmt(dice)}  "
        f"params {fmt_count(prof.get('params')):>6}  MACs {fmt_count(prof.get('macs')):>6}  {state:<10} "
        f"{'-' if secs is None else f'{secs:.1f}'}s{reason}"
    )


def _extra(args: Any, space: Any) -> dict[str, Any]:
    """--set, --data and --device as config overrides for every trial (``plsearch.config.gate``'s dialect)."""
    from plsearch.cli import parse_device
    from plsearch.config.gate import check_value, parse_sets

    extra = parse_sets(args.set)
    searched = {a.path for a in space.axes}
    clash = sorted(set(extra) & searched)
    if clash:
        raise CLIError(f"--set {clash[0]} fixes a path the space searches; remove it from the space or from --set")
    if args.data is not None:
        if not Path(args.data).is_dir():
            raise CLIError(f"data folder {args.data} does not exist; pass a folder with images/ and masks/")
        extra["data.root"] = str(Path(args.data).resolve())
    if args.device is not None:
        parse_device(args.device)
        extra["train.device"] = args.device
    if "data.root" in extra and extra["data.root"]:
        extra["data.root"] = str(Path(extra["data.root"]).resolve())  # worker processes see the same folder
    return {k: check_value(k, v) for k, v in extra.items()}


def _draw(args: Any) -> Any:
    """``plsearch.report.study.draw_plots`` unless --no-plots."""
    if args.no_plots:
        return None
    from plsearch.report.study import draw_plots

    return lambda study, out, refs: draw_plots(study, out, references=refs)


def _devices(args: Any) -> list[str]:
    """``--devices a,b``: each one checked to exist here; [] without the flag."""
    from plsearch.cli import parse_device

    if args.devices is None:
        return []
    if args.device is not None:
        raise CLIError("--device and --devices both given; use --devices for one worker per device, else --device")
    names = [d.strip() for d in args.devices.split(",")]
    if not all(names):
        raise CLIError(f"--devices {args.devices!r} has an empty entry; write e.g. --devices cuda:0,cuda:1")
    for name in names:
        parse_device(name)
    if args.workers is not None and args.workers < len(names):
        raise CLIError(
            f"--workers {args.workers} leaves some of the {len(names)} --devices unused; raise --workers "
            "or list fewer devices"
        )
    return names


def reference_line(ref: str, rec: dict, cached: bool) -> str:
    """One line per reference: dice, params, MACs, time (or cached), chosen rate, failure."""
    from plsearch.search.pareto import fmt_count

    m = rec.get("metrics") or {}
    took = "cached" if cached else f"{rec['seconds']:.1f}s"
    return (
        f"reference {ref:<12} dice {_fmt(m.get('val_dice'))}  params {fmt_count(rec['profile']['params']):>6}"
        f"  MACs {fmt_count(rec['profile']['macs']):>6}  {took}"
        + (f"  lr {rec['lr']:g} (best of {len(rec['lr_tried'])} on val)" if len(rec.get("lr_tried") or {}) > 1 else "")
        + (f"  [{rec['fail_reason']}]" if rec.get("fail_reason") else "")
    )


def _on_reference(shown: Any) -> Any:
    """``on_reference`` for the search: the result line on stdout, one step of the progress display."""

    def on_reference(ref: str, rec: dict, cached: bool) -> None:
        shown.say(reference_line(ref, rec, cached))
        shown.reference(ref, cached)

    return on_reference


def _on_trial(shown: Any) -> Any:
    def on_trial(rec: dict) -> None:
        shown.say(trial_line(rec))
        shown.trial(rec)

    return on_trial


def _check_artifacts(args: Any) -> None:
    """--keep-top and --artifacts, before anything is written."""
    from plsearch.infer.artifacts import ArtifactError, check_store_path

    if args.keep_top is not None and args.keep_top < 0:
        raise CLIError(f"--keep-top must be 0 or more, got {args.keep_top}; 0 keeps only the Pareto set's weights")
    if args.artifacts is not None:
        try:
            check_store_path(args.artifacts)
        except ArtifactError as e:
            raise CLIError(str(e)) from None


def _say(message: str) -> None:
    print(message, flush=True)


def _worker_command(
    args: Any,
    space_path: str,
    out: Path,
    name: str,
    total: int,
    index: int,
    device: str | None,
    remaining: float | None,
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "plsearch.search",
        "--space",
        space_path,
        "--out",
        str(out.resolve()),
        "--study",
        name,
        "--n-trials",
        str(total),
        "--heartbeat",
        str(args.heartbeat),
        "--worker-index",
        str(index),
        "--no-references",
        "--no-plots",
    ]
    if args.artifacts is not None:
        cmd += ["--artifacts", str(Path(args.artifacts).expanduser().resolve())]
    if args.keep_top is not None:
        cmd += ["--keep-top", str(args.keep_top)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.data is not None:
        cmd += ["--data", str(Path(args.data).resolve())]
    for item in args.set:
        cmd += ["--set", item]
    if device:
        cmd += ["--device", device]
    if remaining is not None:
        cmd += ["--timeout", f"{remaining:.3f}"]
    return cmd + (["--verbose"] if args.verbose else [])


def _cap_memory(device: str | None) -> None:
    """Cap this process's CUDA memory at ``$PLSEARCH_CUDA_MEMORY_FRACTION`` of its GPU, where set."""
    from plsearch.search.workers import MEMORY_FRACTION_ENV

    text = os.environ.get(MEMORY_FRACTION_ENV)
    if not text:
        return
    try:
        fraction = float(text)
    except ValueError:
        raise CLIError(
            f"{MEMORY_FRACTION_ENV}={text!r} is not a number; unset it or give a fraction such as 0.5"
        ) from None
    from plsearch.cli import parse_device
    from plsearch.nn.speed import cap_cuda_memory

    cap_cuda_memory(parse_device(device), fraction)


def _cuda() -> bool:
    """Is there a GPU the workers' memory caps apply to? (On a CPU the caps are set but mean nothing.)"""
    import torch

    return torch.cuda.is_available()


def _release_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the references' cached blocks would stay reserved beside the workers'


def _run_workers(
    args: Any,
    space: Any,
    extra: dict,
    spec: Any,
    out: Path,
    name: str,
    total: int,
    workers: int,
    devices: list[str],
    shown: Any,
) -> Any:
    """Open the study, train the references here, run ``workers`` processes, then write the outputs.

    Returns the ``SearchResult`` (``ran``: the trials the workers finished)."""
    import time

    import plsearch
    from plsearch.search.records import write_outputs
    from plsearch.search.references import train_references
    from plsearch.search.runner import finish, prepare
    from plsearch.search.workers import MEMORY_FRACTION_ENV, assign_devices, launch, tally

    s = prepare(
        space,
        out_dir=out,
        storage=spec,
        study_name=name,
        n_trials=total,
        timeout=args.timeout,
        seed=args.seed,
        extra=extra,
        workers=workers,
        heartbeat=args.heartbeat,
        on_event=_say,
        artifacts=args.artifacts,
        keep_top=args.keep_top,
    )
    ref_extra = {**s.extra, "train.device": devices[0]} if devices else s.extra
    refs = {}
    if not args.no_references and space.references:
        shown.stage("references", 0, len(space.references))
        refs = train_references(
            s.space,
            out,
            ref_extra,
            _on_reference(shown),
            workers=workers if not devices and not s.space.raw.get("imports") else 1,
            keep=(s.study, s.store),
        )
        _release_cuda_cache()
    remaining = None if s.limit is None else s.limit - (time.monotonic() - s.t_start)
    env = dict(
        os.environ,
        PLSEARCH_STORAGE=spec.target,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(plsearch.__file__).parents[1]), os.environ.get("PYTHONPATH")])
        ),
    )
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    placed = assign_devices(devices, workers, args.device)  # (device, CUDA memory cap) of each worker
    device = lambda i: placed[i][0]  # noqa: E731
    caps = [cap for _, cap in placed]
    envs = [{**env, MEMORY_FRACTION_ENV: str(cap)} if cap else env for cap in caps] if any(caps) else env
    commands = [
        _worker_command(args, str(Path(args.space).resolve()), out, name, total, i, device(i), remaining)
        for i in range(workers)
    ]
    errors: list[str] = []
    ran = [0]

    def on_line(i: int, line: str, is_err: bool) -> None:
        if is_err and line.startswith("error: "):
            errors.append(line[len("error: ") :])
            return
        if is_err:
            print(f"[w{i}] {line}", file=sys.stderr, flush=True)
            return
        shown.say(f"[w{i}] {line}")
        if line.startswith("trial "):
            ran[0] += 1
            shown.trial({})  # the count (a worker's record stays in its process)

    def tick() -> None:
        write_outputs(s.study, out)

    if remaining is None or remaining > 0:
        where = f" on {', '.join(str(device(i)) for i in range(workers))}" if devices else ""
        capped = (
            f"; CUDA memory caps {', '.join(str(c) for c in caps)} of a shared GPU" if any(caps) and _cuda() else ""
        )
        print(f"starting {workers} workers{where}{capped}", flush=True)
        shown.stage("trials", tally(s.study)[0], total)
        try:
            codes = launch(commands, envs, on_line, on_tick=tick)
        except KeyboardInterrupt:  # the workers re-queued their trials and stopped: keep the records current
            write_outputs(s.study, out)
            _snapshot(out, name, spec)
            raise
        _snapshot(out, name, spec)
        if errors:
            raise CLIError(errors[0])
        for i, code in enumerate(codes):
            if code < 0:
                print(
                    f"worker {i} ended by signal {-code}; its trial is re-queued by the others or the next run",
                    flush=True,
                )
        crashed = [str(i) for i, code in enumerate(codes) if code > 0]
        if crashed:  # a worker that died on an error (no `error:` line to relay): never a silent short search
            write_outputs(s.study, out)
            raise CLIError(
                f"worker {', '.join(crashed)} stopped with an error before the search finished "
                f"({tally(s.study)[0]} of {total} trials); its output is above: fix the cause and rerun the same "
                "command to resume"
            )
    else:
        print(f"timeout of {s.limit:g}s reached during the references; rerun to continue", flush=True)
    return finish(s, refs, _draw(args), ran[0])


def _snapshot(out: Path, name: str, spec: Any) -> None:
    """Refresh study.db from the workers' journal (optuna-dashboard sqlite:///OUT/study.db shows it)."""
    from plsearch.search.workers import sqlite_snapshot

    try:
        if sqlite_snapshot(out, name, spec):
            print(f"study.db: a copy of {spec.shown} for optuna-dashboard; the journal stays the storage", flush=True)
    except Exception as e:  # noqa: BLE001 - a convenience copy must not fail a finished search
        print(
            f"could not refresh study.db from the journal ({type(e).__name__}: {e}); the journal is intact", flush=True
        )


def _default_workers(args: Any, space: Any, extra: dict, n_trials: int) -> int:
    """One single-threaded worker per core when the trials are small and on the CPU (rule and
    figures: ``plsearch.search.workers.default_workers``), unless the storage is one SQLite file."""
    from plsearch.search.workers import default_workers

    storage = args.storage or os.environ.get("PLSEARCH_STORAGE") or ""
    if storage.strip().lower().startswith("sqlite"):
        return 1
    values = {**dict(space.fixed), **extra}
    device = str(values.get("train.device") or args.device or "auto")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return default_workers(values, cpu=device == "cpu", n_trials=n_trials)


def _run(
    args: Any,
    space: Any,
    extra: dict,
    spec: Any,
    out: Path,
    name: str,
    n_trials: int,
    workers: int,
    devices: list[str],
    shown: Any,
) -> Any:
    """The search itself: here (one worker) or in ``workers`` processes; progress through ``shown``."""
    from plsearch.search.runner import run_search

    if workers > 1:
        return _run_workers(args, space, extra, spec, out, name, n_trials, workers, devices, shown)
    return run_search(
        space,
        out_dir=out,
        storage=spec,
        study_name=name,
        n_trials=n_trials,
        timeout=args.timeout,
        seed=args.seed,
        extra=extra,
        references=not args.no_references,
        draw=_draw(args),
        heartbeat=args.heartbeat,
        on_trial=_on_trial(shown),
        on_reference=_on_reference(shown),
        on_event=_say,
        artifacts=args.artifacts,
        keep_top=args.keep_top,
        on_stage=shown.stage,
    )


def _search(argv: Sequence[str] | None) -> int:
    with ExitStack() as held:  # the results folder's lock, once _search_held takes it, until the run ends
        return _search_held(argv, held)


def _search_held(argv: Sequence[str] | None, held: ExitStack) -> int:
    import time

    from plsearch.config.naming import study_ref
    from plsearch.search.pareto import beaten_line, degenerate_line, pareto_markdown
    from plsearch.search.references import load_references
    from plsearch.search.runner import prepare, run_trials
    from plsearch.search.space import load_space
    from plsearch.search.storage import parse_storage
    from plsearch.search.workers import tally

    args = build_parser().parse_args(argv_or_sys(argv))
    setup_logging(args.verbose)
    check_positive(args, "n_trials", "timeout", "workers", "heartbeat")
    check_seed(args)
    _check_artifacts(args)
    space = load_space(args.space)
    devices = _devices(args)
    workers = args.workers or max(1, len(devices))
    extra = _extra(args, space)
    if devices and workers == 1:
        extra["train.device"] = devices[0]
    ref = study_ref(args, default_name=space.name, env={})  # the storage is parse_storage's ($PLSEARCH_STORAGE)
    name, out = str(ref.name), ref.folder
    n_trials = args.n_trials or space.n_trials
    if args.workers is None and not devices and args.worker_index is None:
        workers = _default_workers(args, space, extra, n_trials)
    spec = parse_storage(args.storage, out, workers)
    from plsearch.outputs import check_outs, named_data

    data = named_data(extra, space)  # --data or --set data.root, and the space's own data.root
    check_outs(data, {"--out": out, "--artifacts": args.artifacts}, {"--storage": spec.path})  # before any write
    _check_writable(out, spec)
    if args.worker_index is None:  # the folder is this study's (or adopted, or --force): before anything is written
        from plsearch.outputs import claim_results

        claim_results(out, name, storage=spec.target, force=args.force, create=False)
        from plsearch.locks import hold_folder

        held.enter_context(hold_folder(out, command="search"))  # one writer: this process, not its --workers
    if args.worker_index is not None or workers == 1:
        _cap_memory(extra.get("train.device", args.device))  # set by --workers for workers that share a GPU
    if args.worker_index is not None:  # one of the processes --workers started: trial lines only
        s = prepare(
            space,
            out_dir=out,
            storage=spec,
            study_name=name,
            n_trials=n_trials,
            timeout=args.timeout,
            seed=args.seed,
            extra=extra,
            heartbeat=args.heartbeat,
            worker_index=args.worker_index,
            on_event=_say,
            artifacts=args.artifacts,
            keep_top=args.keep_top,
        )
        run_trials(s, on_trial=lambda r: print(trial_line(r), flush=True), write=False)
        return 0
    print(
        f"study {name!r}: {n_trials} trials of {args.space} ({space.sampler}, objectives "
        f"{', '.join(f'{o.direction[:3]} {o.name}' for o in space.objectives)}), out {out}, storage {spec.shown}"
        + (f", {workers} workers" if workers > 1 else ""),
        flush=True,
    )
    t0 = time.perf_counter()
    from plsearch.cli.search_progress import SearchProgress

    shown = SearchProgress()
    try:
        result = _run(args, space, extra, spec, out, name, n_trials, workers, devices, shown)
    except BaseException:
        shown.close(failed=True)
        raise
    shown.close()
    from plsearch.outputs import claim_results

    claim_results(out, name, storage=spec.target, force=args.force)  # record the folder's study
    n_done = tally(result.study)[0]
    print(
        f"\n{n_done} finished trial(s), {result.ran} this run, {time.perf_counter() - t0:.0f}s. Pareto front "
        f"(validation; {', '.join(space.metric_names)}):"
    )
    print(pareto_markdown(result.pareto), end="")
    print(degenerate_line(result.records), end="")
    print(beaten_line(result.pareto, load_references(out), [(o.name, o.direction) for o in space.objectives]), end="")
    for what, where in result.plots.items():
        print(f"{what}: {where}")
    print(
        f"records: {out / 'trials.jsonl'}; Pareto configs: {out / 'pareto'}/trial_<n>.yaml; rerun the same "
        "command to add trials (--n-trials) or resume"
    )
    return 0


def read_only_cause(e: BaseException) -> str:
    """What made a write fail because the storage is read-only ("attempt to write a readonly database", a
    read-only file system), looked for in ``e`` and what caused it (Optuna wraps a failed commit); "" if not."""
    import errno

    seen: BaseException | None = e
    for _ in range(6):
        if seen is None:
            return ""
        text = " ".join(str(seen).split())
        if isinstance(seen, OSError) and seen.errno == errno.EROFS:
            return f"{seen.strerror or 'read-only file system'}: {seen.filename}"
        for marker in ("readonly database", "read-only database", "read-only file system"):
            if marker in text.lower():
                import re

                return re.sub(r"^\([^)]*\)\s*", "", text.split("[SQL")[0]).strip() or marker
        seen = seen.__cause__ or seen.__context__
    return ""


def _check_writable(out: Path, spec: Any) -> None:
    """A results folder (or its study file) the user cannot write: one line naming it, before any lock or claim
    (a resume would fail at Optuna's first commit with "invalid data in the commit")."""
    for path in (out, spec.path):
        if path is not None and Path(path).exists() and not os.access(path, os.W_OK):
            raise CLIError(
                f"{path} is read-only (no write permission); a search writes its trials there: make it writable "
                "(chmod u+w), or copy the results folder and resume with --out COPY"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with one ``error:`` line for bad input, 130 on Ctrl-C)."""
    import signal

    from plsearch.data.dataset import DataError
    from plsearch.search.runner import SearchError
    from plsearch.search.space import SearchSpaceError
    from plsearch.search.storage import redact

    def body() -> int:
        try:
            return _search(argv)
        except Exception as e:  # the database went away mid-search, ...: one line, password hidden
            cause = read_only_cause(e)
            if cause:  # Optuna says "invalid data in the commit" for a read-only SQLite file: name the cause
                raise CLIError(
                    f"the study's storage is read-only ({cause}); make the results folder and its study.db "
                    "writable, or copy the folder and resume with --out COPY"
                ) from None
            if type(e).__module__.split(".")[0] in ("sqlalchemy", "psycopg", "psycopg2"):
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise CLIError(
                    redact(f"storage error ({first}); check the database server and rerun to resume")
                ) from None
            raise

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM (a scheduler's stop): re-queue the running trial like Ctrl-C

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        old = None
    try:
        code = run_cli(body, (SearchSpaceError, SearchError, DataError))
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    sys.stdout.flush()
    return code
