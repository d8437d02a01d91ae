"""The truth table: every config of a fixed sample trained with several seeds to a high fidelity, whole
learning curves recorded, so search strategies and fidelities can be replayed against it in seconds
(as NAS-Bench-201 and HPOBench do for classification).

Row kinds (``kind``):

- ``sampled``: configs drawn from the space at random (seeded, valid, within its budgets, ``train.lr`` sampled);
- ``preset``: the space's presets, each at the rate the rate rule picks (``plsearch.train.lr``: every candidate rate
  trained with seed 0, kept by validation Dice; the other seeds then run at it);
- ``family``: what a user tries by hand: the ``unet`` preset's topology on a depth x width grid, rates by the rule;
- ``nested``: sub-networks of one PL-Net (steps, stages, Ocs, FSC, BSC; PL-Net-dagger's other fields), stratified,
  all at the rate the rule picks for PL-Net-dagger;
- ``rate``: the rate rule's seed-0 runs (``label@lr=...``); the chosen one is also the seed-0 row of its config.

The plan (configs, fidelity, seeds) is stored beside the table (``<name>.configs.json``), so extending a table
reads it instead of sampling again. Rows are gzip JSON lines (``<name>.jsonl.gz``), one per (kind, label, seed);
rows that share a training run (a chosen rate, PL-Net-dagger in the nested set) carry the same ``run`` key.
Every row of a table comes from one git revision: record from a worktree pinned there. Reading needs no
plsearch::

    import gzip, json
    rows = [json.loads(line) for line in gzip.open("docs/tables/dsb2018.jsonl.gz", "rt")]

Run it from the shell with ``python -m plsearch.table``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plsearch.config.schema import RunConfig
from plsearch.outputs import atomic_file

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace
    from plsearch.studies.runs import Job

__all__ = [
    "FORMAT",
    "Entry",
    "TableError",
    "TablePlan",
    "Want",
    "append_rows",
    "make_plan",
    "pending",
    "read_rows",
    "revision",
    "summary",
    "summary_markdown",
    "wave",
]

FORMAT = 1
TEST_EPOCHS = (1, 3, 6, 9)
KIND_ORDER = {"rate": 0, "sampled": 1, "nested": 2, "preset": 3, "family": 4}
FAMILY_DEPTHS = (3, 4, 5)
FAMILY_WIDTHS = (0.5, 0.75, 1.0, 1.25)  # x the unet preset's width at the space's fidelity
NESTED_BASE = "plnet-small"
SKIPS = ((True, True), (True, False), (False, True), (False, False))


class TableError(ValueError):
    """A table cannot be recorded or extended as asked; the message names the fix."""


@dataclass(frozen=True)
class Entry:
    """One config of the plan. ``config``: the resolved ``RunConfig`` dict at the table's fidelity (seed 0);
    ``rate``: ``own`` (its config's ``train.lr``), ``rule`` (the rate rule over ``TablePlan.rates``) or
    ``nested`` (the rate the rule picks for ``NESTED_BASE``)."""

    label: str
    kind: str
    config: Mapping[str, Any]
    rate: str
    params: int
    macs: int
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "rate": self.rate,
            "params": self.params,
            "macs": self.macs,
            "info": dict(self.info),
            "config": dict(self.config),
        }


@dataclass(frozen=True)
class TablePlan:
    """What a table holds: its configs, seeds, top epoch, the epochs whose best-so-far test Dice is measured,
    and the candidate rates of the rate rule."""

    space: str
    epochs: int
    seeds: int
    test_epochs: tuple[int, ...]
    rates: tuple[float, ...]
    entries: tuple[Entry, ...]
    sample_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "space": self.space,
            "epochs": self.epochs,
            "seeds": self.seeds,
            "test_epochs": list(self.test_epochs),
            "rates": list(self.rates),
            "sample_seed": self.sample_seed,
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TablePlan:
        return cls(
            space=str(d["space"]),
            epochs=int(d["epochs"]),
            seeds=int(d["seeds"]),
            test_epochs=tuple(int(e) for e in d["test_epochs"]),
            rates=tuple(float(r) for r in d["rates"]),
            sample_seed=int(d.get("sample_seed", 0)),
            entries=tuple(
                Entry(
                    e["label"], e["kind"], e["config"], e["rate"], int(e["params"]), int(e["macs"]), e.get("info", {})
                )
                for e in d["entries"]
            ),
        )

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)


# -- the plan -------------------------------------------------------------------------------------------


def _at_top(cfg: RunConfig, epochs: int) -> RunConfig:
    """The table's fidelity: the space's, trained to ``epochs``, one thread a run (CPU-seconds comparable)."""
    return replace(cfg, train=replace(cfg.train, epochs=epochs, num_threads=1, seed=0))


def _entry(label: str, kind: str, cfg: RunConfig, rate: str, info: Mapping[str, Any]) -> Entry:
    from plsearch.graph.wiring import estimate

    est = estimate(cfg.model, cfg.data.image_size)
    return Entry(label, kind, cfg.to_dict(), rate, int(est.params), int(est.macs), dict(info))


def _fits(space: SearchSpace, objective: Any, cfg: RunConfig) -> bool:
    if cfg.data.image_size < cfg.model.total_stride():
        return False
    prof = objective.measure(cfg)
    return all(objective.constraints(prof, True)[name] <= 0 for name, _ in space.constraints)


def make_plan(
    space: SearchSpace,
    *,
    sampled: int = 40,
    family: bool = True,
    nested: bool = True,
    seeds: int = 3,
    epochs: int | None = None,
    test_epochs: Sequence[int] = TEST_EPOCHS,
    sample_seed: int = 0,
    extra: Mapping[str, Any] | None = None,
    keep: TablePlan | None = None,
) -> TablePlan:
    """The configs of a table for ``space``: ``sampled`` random ones, the presets, the ``unet`` family and the
    nested set. ``epochs``: the top fidelity (default 3x the space's). ``keep``: a stored plan whose entries stay
    as they are (extending a table never resamples what it holds)."""
    from plsearch.config.gate import resolve
    from plsearch.config.schema import ConfigError
    from plsearch.search.objective import Objective
    from plsearch.search.references import reference_config
    from plsearch.studies.fidelity import sample_configs
    from plsearch.train.lr import lr_candidates

    base_epochs = int(dict(space.fixed).get("train.epochs", RunConfig().train.epochs))
    top = int(epochs or 3 * base_epochs)
    if seeds < 1 or top < 1 or sampled < 0:
        raise TableError(f"need seeds >= 1, epochs >= 1 and sampled >= 0, got {seeds}, {top}, {sampled}")
    points = tuple(sorted({int(e) for e in test_epochs if 1 <= int(e) < top} | {top}))
    rates = lr_candidates(space)
    objective = Objective(space, extra)
    entries: list[Entry] = list(keep.entries) if keep else []
    have = {e.label for e in entries}
    models = {json.dumps(e.config["model"], sort_keys=True) for e in entries if e.kind == "sampled"}

    n_have = sum(1 for e in entries if e.kind == "sampled")
    if sampled > n_have:
        for _, params, cfg in sample_configs(space, sampled, sample_seed, extra):
            key = json.dumps(cfg.model.to_dict(), sort_keys=True)
            if key in models:
                continue
            models.add(key)
            label = f"s{n_have:02d}"
            n_have += 1
            entries.append(_entry(label, "sampled", _at_top(cfg, top), "own", {"params": params}))
            if n_have >= sampled:
                break

    presets = list(space.references) + ([NESTED_BASE] if nested and NESTED_BASE not in space.references else [])
    rate = "rule" if rates else "own"
    for name in presets:
        if name not in have:
            entries.append(_entry(name, "preset", _at_top(reference_config(space, name, extra), top), rate, {}))

    if family:
        unet = reference_config(space, "unet", extra)
        for depth in FAMILY_DEPTHS:
            for mult in FAMILY_WIDTHS:
                width = max(1, round(unet.model.base_width * mult))
                label = f"unet-d{depth}-w{width}"
                if label in have:
                    continue
                try:
                    cfg = resolve(unet, {"model.depth": depth, "model.base_width": width})
                except ConfigError:
                    continue
                if _fits(space, objective, cfg):
                    entries.append(
                        _entry(label, "family", _at_top(cfg, top), rate, {"depth": depth, "base_width": width})
                    )

    if nested:
        entries += [e for e in _nested(space, objective, top, extra) if e.label not in have]
    return TablePlan(space.name, top, seeds, points, rates, tuple(entries), sample_seed)


def _nested(space: SearchSpace, objective: Any, top: int, extra: Mapping[str, Any] | None) -> list[Entry]:
    """Steps 1-3 x stages 1-2 x the four FSC/BSC switches (24 cells), each at one of two widths: PL-Net-dagger's
    Ocs and the widest Ocs of the space's grid at which the largest cell (3 steps, 2 stages, both skips) keeps
    within its budgets. The widths alternate like a half-fraction design, so every (steps, stages) pair and every
    switch meets both, and the largest and the smallest cells are in."""
    from plsearch.config.gate import resolve
    from plsearch.search.references import reference_config

    base = reference_config(space, NESTED_BASE, extra)
    base = resolve(base, {"model.ipl": "progressive", "model.stage_step": 1})
    lo = base.model.ocs
    grid = sorted({float(v) for a in space.axes if a.path == "model.ocs" for v in _axis_values(a)} | {lo})
    hi = lo
    for ocs in grid:
        if ocs > lo and _fits(space, objective, resolve(base, {"model.steps": 3, "model.stages": 2, "model.ocs": ocs})):
            hi = ocs
    out = []
    for steps in (1, 2, 3):
        for stages in (1, 2):
            for i, (fsc, bsc) in enumerate(SKIPS):
                ocs = hi if (steps + stages + i) % 2 == 1 else lo
                over = {
                    "model.steps": steps,
                    "model.stages": stages,
                    "model.fsc": fsc,
                    "model.bsc": bsc,
                    "model.ocs": ocs,
                }
                cfg = resolve(base, over)
                if not _fits(space, objective, cfg):
                    continue
                label = f"n-s{steps}-k{stages}-f{int(fsc)}b{int(bsc)}-o{ocs:g}"
                info = {k.split(".")[1]: v for k, v in over.items()}
                out.append(_entry(label, "nested", _at_top(cfg, top), "nested", info))
    return out


def _axis_values(axis: Any) -> list[float]:
    if axis.kind == "categorical":
        return [float(c) for c in axis.choices if isinstance(c, (int, float))]
    if getattr(axis, "step", None):
        n = int(round((axis.high - axis.low) / axis.step))
        return [axis.low + i * axis.step for i in range(n + 1)]
    return [axis.low, axis.high]


def read_plan(path: str | Path) -> TablePlan | None:
    p = Path(path)
    return TablePlan.from_dict(json.loads(p.read_text())) if p.is_file() else None


def write_plan(plan: TablePlan, path: str | Path) -> None:
    _atomic_write(Path(path), (json.dumps(plan.to_dict(), indent=1) + "\n").encode())


# -- what is left to run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """A row the table lacks, and the training run that fills it (``job``; several rows may share one)."""

    kind: str
    label: str
    seed: int
    lr: float
    entry: Entry
    job: Job


def run_key(config: Mapping[str, Any]) -> str:
    """The training run's key: a digest of its config without the seed, then the seed (``ab12.../s1``)."""
    tree = json.loads(json.dumps(config))
    seed = tree["train"].pop("seed")
    digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:12]
    return f"r{digest}/s{seed}"


def _job(plan: TablePlan, entry: Entry, seed: int, lr: float | None) -> Job:
    from plsearch.studies.runs import Job

    cfg = RunConfig.from_dict(entry.config)
    cfg = replace(cfg, train=replace(cfg.train, seed=seed, lr=cfg.train.lr if lr is None else lr))
    return Job(run_key(cfg.to_dict()), cfg, group=entry.label, test_epochs=plan.test_epochs)


def chosen_rate(plan: TablePlan, entry: Entry, rows: Mapping[tuple[str, str, int], Mapping[str, Any]]) -> float | None:
    """The rate the rule picks for ``entry`` from its seed-0 ``rate`` rows (None while one is missing)."""
    from plsearch.train.lr import rate_rank

    if entry.rate == "own":
        return float(entry.config["train"]["lr"])
    if entry.rate == "nested":
        base = next((e for e in plan.entries if e.kind == "preset" and e.label == NESTED_BASE), None)
        return chosen_rate(plan, base, rows) if base is not None else float(entry.config["train"]["lr"])
    best: tuple[float, float] | None = None
    for lr in plan.rates:
        r = rows.get(("rate", rate_label(entry.label, lr), 0))
        if r is None:
            return None
        if r.get("fail_reason"):
            continue
        if best is None or rate_rank(lr, float(r["val_dice"])) > rate_rank(*best):
            best = (lr, float(r["val_dice"]))
    return best[0] if best else float(min(plan.rates))


def rate_label(label: str, lr: float) -> str:
    return f"{label}@lr={lr:.3g}"


def _order(kind: str, seed: int, of_kind: str) -> tuple[int, int]:
    """Recording order: the presets' rate runs (the nested set's rate), seed 0 of the sampled and nested configs,
    the family's rate runs, then the rest seed by seed."""
    if kind == "rate":
        return (0, 0 if of_kind == "preset" else 3)
    return (seed, KIND_ORDER[kind])


def pending(plan: TablePlan, rows: Sequence[Mapping[str, Any]]) -> tuple[list[Want], int]:
    """The rows the table lacks whose run can start now, in recording order (``_order``); and how many wait on a
    rate still being chosen."""
    wants, blocked = _pending(plan, rows)
    return wants, len(blocked)


def wave(plan: TablePlan, rows: Sequence[Mapping[str, Any]]) -> list[Want]:
    """The next batch to run: the pending rows that come before every row still waiting on a rate, so that a
    row unlocked by a chosen rate is not queued behind later seeds."""
    wants, blocked = _pending(plan, rows)
    first = min(blocked, default=None)
    return [w for w in wants if first is None or _order(w.kind, w.seed, w.entry.kind) < first]


def _pending(plan: TablePlan, rows: Sequence[Mapping[str, Any]]) -> tuple[list[Want], list[tuple[int, int]]]:
    have = {(r["kind"], r["label"], int(r["seed"])): r for r in rows}
    wants: list[Want] = []
    blocked: list[tuple[int, int]] = []
    for entry in plan.entries:
        if entry.rate == "rule":
            for lr in plan.rates:
                label = rate_label(entry.label, lr)
                if ("rate", label, 0) not in have:
                    wants.append(Want("rate", label, 0, lr, entry, _job(plan, entry, 0, lr)))
        rate = chosen_rate(plan, entry, have)
        for seed in range(plan.seeds):
            if (entry.kind, entry.label, seed) in have:
                continue
            if rate is None:
                blocked.append(_order(entry.kind, seed, entry.kind))
                continue
            wants.append(Want(entry.kind, entry.label, seed, rate, entry, _job(plan, entry, seed, rate)))
    index = {id(w): i for i, w in enumerate(wants)}
    wants.sort(key=lambda w: (*_order(w.kind, w.seed, w.entry.kind), index[id(w)]))
    return wants, blocked


# -- rows -------------------------------------------------------------------------------------------------


def make_row(want: Want, result: Mapping[str, Any], rev: str) -> dict[str, Any]:
    """A table row from a run's result (``plsearch.studies.runs.run_job``'s dict)."""
    val = list(result.get("val_curve") or [])
    cpu = list(result.get("cpu_curve") or [])
    vcpu = list(result.get("val_cpu_curve") or [])
    points = {int(p["epoch"]): p for p in result.get("test_points") or []}
    epochs, best, tc, ec = [], -math.inf, 0.0, 0.0
    for i, v in enumerate(val):
        e = i + 1
        best = max(best, v)
        tc += cpu[i] if i < len(cpu) else math.nan
        ec += (vcpu[i] if i < len(vcpu) else math.nan) + float(points.get(e, {}).get("cpu_seconds", 0.0))
        rec: dict[str, Any] = {
            "epoch": e,
            "val_dice": v,
            "best_val_dice": best,
            "cpu_seconds": round(tc, 4),
            "eval_cpu_seconds": round(ec, 4),
        }
        if e in points:
            rec["test_dice"] = round(float(points[e]["test_dice"]), 6)
        epochs.append(rec)
    return {
        "label": want.label,
        "kind": want.kind,
        "seed": want.seed,
        "run": want.job.key,
        "lr": want.lr,
        "params": want.entry.params,
        "macs": want.entry.macs,
        "info": dict(want.entry.info) if want.kind != "rate" else {"of": want.entry.label, "of_kind": want.entry.kind},
        "revision": rev,
        "fail_reason": result.get("fail_reason"),
        "val_dice": result.get("val_dice"),
        "best_epoch": result.get("best_epoch"),
        "test_dice": result.get("test_dice"),
        "trivial_val_dice": result.get("val_trivial_dice"),
        "trivial_test_dice": result.get("test_trivial_dice"),
        "train_cpu_seconds": round(tc, 3) if epochs else None,
        "eval_cpu_seconds": round(ec, 3) if epochs else None,
        "wall_seconds": result.get("seconds"),
        "n_test": result.get("n_test"),
        "epochs": epochs,
        "config": want.job.config.to_dict(),
    }


def share_row(want: Want, row: Mapping[str, Any]) -> dict[str, Any]:
    """The row of ``want`` from a recorded row of the same run (a chosen rate's seed-0 run, say)."""
    out = dict(row)
    out.update(label=want.label, kind=want.kind, seed=want.seed, info=dict(want.entry.info), params=want.entry.params)
    return out


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """A table's rows (``[]`` when the file does not exist yet)."""
    p = Path(path)
    if not p.is_file():
        return []
    try:
        with gzip.open(p, "rt") as f:
            return [json.loads(x) for x in f if x.strip()]
    except (OSError, EOFError, json.JSONDecodeError) as e:
        raise TableError(f"table {p} cannot be read ({e}); restore it from git (git checkout -- {p})") from e


def append_rows(path: str | Path, new: Sequence[Mapping[str, Any]]) -> int:
    """Add rows to the table file atomically (a crash leaves the old file or the new one, never half);
    refuses a row of another revision than the table's. Returns the table's row count."""
    p = Path(path)
    rows = read_rows(p)
    revs = {r.get("revision") for r in rows} | {r.get("revision") for r in new}
    if len(revs) > 1:
        raise TableError(
            f"table {p} holds rows of revision(s) {sorted(str(x) for x in revs)}; every row of a table comes from "
            "one revision: record from a worktree pinned there (git worktree add ../plsearch-table REVISION)"
        )
    rows += [dict(r) for r in new]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    _atomic_write(p, buf.getvalue())
    return len(rows)


def _atomic_write(p: Path, data: bytes) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(p) as tmp:  # a full disk: DiskFullError, the old table kept, no .tmp left
        tmp.write_bytes(data)


def revision(root: str | Path | None = None) -> str:
    """The git revision of the plsearch checkout that runs (``<sha>+dirty`` with uncommitted tracked changes;
    ``unknown`` outside git)."""
    import plsearch

    where = Path(root) if root else Path(plsearch.__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


# -- the summary ------------------------------------------------------------------------------------------


def _sd(xs: Sequence[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _at(row: Mapping[str, Any], epoch: int, key: str) -> float | None:
    eps = [e for e in row.get("epochs") or [] if e["epoch"] <= epoch and key in e]
    return float(eps[-1][key]) if eps and eps[-1]["epoch"] == min(epoch, row["epochs"][-1]["epoch"]) else None


def summary(rows: Sequence[Mapping[str, Any]], plan: TablePlan | None = None, val_epoch: int = 9) -> dict[str, Any]:
    """Counts per kind, cost (unique runs), and the seed noise: the sd over seeds of the best-so-far val Dice at
    ``val_epoch`` and of the top epoch's test Dice, per config with two or more seeds (median and pooled)."""
    top = plan.epochs if plan else max((r["epochs"][-1]["epoch"] for r in rows if r.get("epochs")), default=0)
    val_epoch = min(val_epoch, top) if top else val_epoch
    kinds: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["kind"] for r in rows}, key=lambda k: KIND_ORDER.get(k, 9)):
        mine = [r for r in rows if r["kind"] == kind]
        by: dict[str, list[Mapping[str, Any]]] = {}
        for r in mine:
            by.setdefault(r["label"], []).append(r)
        noise: dict[str, list[float]] = {"val": [], "test": []}
        for group in by.values():
            ok = [r for r in group if not r.get("fail_reason") and r.get("epochs")]
            for name, ep, key in (("val", val_epoch, "best_val_dice"), ("test", top, "test_dice")):
                xs = [x for x in (_at(r, ep, key) for r in ok) if x is not None]
                if len(xs) >= 2:
                    noise[name].append(_sd(xs))
        kinds[kind] = {
            "configs": len(by),
            "planned": plan.count(kind) if plan and kind != "rate" else None,
            "rows": len(mine),
            "failed": sum(1 for r in mine if r.get("fail_reason")),
            "complete": sum(1 for g in by.values() if plan and len(g) >= plan.seeds),
            "sd_val": _spread(noise["val"]),
            "sd_test": _spread(noise["test"]),
        }
    runs = {r["run"]: r for r in rows}
    pooled = {
        name: _spread([v for k in kinds.values() if k is not None for v in ([] if k[name] is None else k[name]["all"])])
        for name in ("sd_val", "sd_test")
    }
    return {
        "rows": len(rows),
        "runs": len(runs),
        "revisions": sorted({str(r.get("revision")) for r in rows}),
        "train_cpu_hours": sum(float(r.get("train_cpu_seconds") or 0) for r in runs.values()) / 3600,
        "eval_cpu_hours": sum(float(r.get("eval_cpu_seconds") or 0) for r in runs.values()) / 3600,
        "kinds": kinds,
        "noise": pooled,
        "val_epoch": val_epoch,
        "top_epoch": top,
    }


def _spread(sds: Sequence[float]) -> dict[str, Any] | None:
    if not sds:
        return None
    s = sorted(sds)
    med = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    return {"n": len(s), "median": med, "pooled": math.sqrt(sum(x * x for x in s) / len(s)), "all": list(s)}


def summary_markdown(s: Mapping[str, Any], plan: TablePlan | None, table: str, command: str) -> str:
    def fmt(x: Mapping[str, Any] | None) -> str:
        return "-" if not x else f"{x['median']:.4f} / {x['pooled']:.4f} (n={x['n']})"

    lines = [
        f"# Truth table: {Path(table).name}",
        "",
        f"Recorded with `{command}` at revision {', '.join(s['revisions']) or '-'}.",
        f"{s['rows']} rows from {s['runs']} training runs; training {s['train_cpu_hours']:.2f} CPU-hours, "
        f"evaluation {s['eval_cpu_hours']:.2f} CPU-hours (one thread a run, `time.process_time`).",
    ]
    if plan:
        lines.append(
            f"Top fidelity {plan.epochs} epochs, {plan.seeds} seeds, best-so-far test Dice at epochs "
            f"{', '.join(map(str, plan.test_epochs))}; rate rule over {', '.join(f'{r:g}' for r in plan.rates) or '-'}."
        )
    lines += [
        "",
        f"Seed noise: sd over seeds per config, median / pooled (root mean square), of the best-so-far val Dice at "
        f"epoch {s['val_epoch']} and of the test Dice at epoch {s['top_epoch']} (best-val weights).",
        "",
        "| kind | configs (planned) | rows | complete (all seeds) | failed | sd val Dice @"
        f"{s['val_epoch']} | sd test Dice @{s['top_epoch']} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, k in s["kinds"].items():
        planned = f" ({k['planned']})" if k["planned"] is not None else ""
        lines.append(
            f"| {kind} | {k['configs']}{planned} | {k['rows']} | {k['complete'] if kind != 'rate' else '-'} | "
            f"{k['failed']} | {fmt(k['sd_val'])} | {fmt(k['sd_test'])} |"
        )
    lines.append(f"| all | | {s['rows']} | | | {fmt(s['noise']['sd_val'])} | {fmt(s['noise']['sd_test'])} |")
    lines += [
        "",
        "Read it without plsearch:",
        "",
        "```python",
        "import gzip, json",
        f'rows = [json.loads(line) for line in gzip.open("{table}", "rt")]',
        "```",
        "",
    ]
    return "\n".join(lines)
