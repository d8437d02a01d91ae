"""Trial records (one plain dict per finished trial), the Pareto front, and the files that hold them.

Everything here is derived from the study's storage, so ``plsearch.report`` can rewrite it any time:
``trials.jsonl`` (one record per finished trial), ``pareto.csv``, ``pareto.md`` and
``pareto/trial_<n>.yaml`` (the ``ModelConfig`` dict that ``PLNet.from_config`` loads).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
CURVE_ATTR = "val_dice_curve"


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Package versions and the git revision of the plsearch checkout (None outside a git repo)."""
    import optuna
    import torch

    import plsearch

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(plsearch.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        git = rev.stdout.strip() or None if rev.returncode == 0 else None
        if git:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=5, cwd=Path(plsearch.__file__).parent).stdout.strip()
            git += "-dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        git = None
    versions = {"plsearch": plsearch.__version__, "torch": torch.__version__, "optuna": optuna.__version__,
                "python": platform.python_version()}
    return {"versions": versions, "git_rev": git}


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def trial_record(t: Any, metric_names: Sequence[str]) -> dict[str, Any]:
    """A JSON-safe record of a finished ``FrozenTrial`` (non-finite numbers become null)."""
    ua = t.user_attrs
    seconds = None
    if t.datetime_start and t.datetime_complete:
        seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
    values = dict(zip(metric_names, t.values)) if t.values is not None and t.state.name == "COMPLETE" else None
    rec = {
        "number": t.number, "state": t.state.name, "feasible": bool(ua.get("feasible", False)) if
        t.state.name == "COMPLETE" else None,
        "params": dict(t.params), "values": values, "metrics": ua.get("metrics"), "profile": ua.get("profile"),
        "constraints": dict(t.constraints), "val_dice_curve": ua.get(CURVE_ATTR), "seed": ua.get("seed"),
        "config": ua.get("config"), "versions": ua.get("versions"), "git_rev": ua.get("git_rev"),
        "worker": ua.get("worker"), "seconds": seconds, "fail_reason": ua.get("fail_reason"),
        "duplicate_of": ua.get("duplicate_of"), "requeued": ua.get("requeued", False),
        "surplus": ua.get("surplus", False),
        "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
    }
    return _finite(rec)


def study_records(study: Any) -> list[dict[str, Any]]:
    """Records of every finished trial of ``study``, in trial-number order."""
    names = study_metric_names(study)
    return [trial_record(t, names) for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED]


def study_metric_names(study: Any) -> list[str]:
    return list(study.metric_names or [f"objective_{i}" for i in range(len(study.directions))])


def pareto_front(records: Iterable[dict], objectives: Sequence[tuple[str, str]]) -> list[dict]:
    """Non-dominated feasible trained trials (duplicates dropped), sorted by the first size objective."""
    pts = [r for r in records if r["state"] == "COMPLETE" and r["feasible"] and r["duplicate_of"] is None
           and r["values"] and all(r["values"].get(n) is not None for n, _ in objectives)]

    def key(r: dict) -> list[float]:  # minimisation form
        return [-r["values"][n] if d == "maximize" else r["values"][n] for n, d in objectives]

    front = []
    for r in pts:
        k = key(r)
        if not any(all(a <= b for a, b in zip(key(o), k)) and key(o) != k for o in pts):
            if not any(key(f) == k for f in front):
                front.append(r)
    size = next((n for n, d in objectives if d == "minimize"), objectives[0][0])
    return sorted(front, key=lambda r: (r["values"][size], r["number"]))


def params_summary(params: dict[str, Any], width: int = 0) -> str:
    """``steps=2 stages=2 ocs=1.25 ...``: leaf names unless two paths share one."""
    leaves = [p.rsplit(".", 1)[-1] for p in params]
    parts = []
    for path, leaf in zip(params, leaves):
        name = leaf if leaves.count(leaf) == 1 else path
        v = params[path]
        parts.append(f"{name}={v:.3g}" if isinstance(v, float) else f"{name}={v}")
    s = " ".join(parts)
    return s if not width or len(s) <= width else s[: width - 1] + "~"


def fmt_count(n: float | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


def pareto_rows(front: Sequence[dict], objectives: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for r in front:
        prof, metrics = r.get("profile") or {}, r.get("metrics") or {}
        row = {"trial": r["number"]}
        for name, _ in objectives:
            row[name] = r["values"][name]
        for k in ("val_dice", "val_iou"):
            row.setdefault(k, metrics.get(k))
        for k in ("params", "macs", "latency_ms"):
            row.setdefault(k, prof.get(k))
        row["seconds"] = r["seconds"]
        row["config"] = params_summary(r["params"])
        rows.append(row)
    empty = [k for k in (rows[0] if rows else {}) if all(r[k] is None for r in rows)]
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


def pareto_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table (also what the CLI prints)."""
    if not rows:
        return "(no feasible completed trial yet)\n"
    cols = list(rows[0])

    def cell(k: str, v: Any) -> str:
        if v is None:
            return "-"
        if k in ("params", "macs"):
            return fmt_count(v)
        if isinstance(v, float):
            return f"{v:.4f}" if k.startswith("val_") else f"{v:.1f}" if k == "seconds" else f"{v:.4g}"
        return str(v)

    body = [[cell(k, r[k]) for k in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    line = lambda xs: "| " + " | ".join(x.ljust(w) for x, w in zip(xs, widths)) + " |"  # noqa: E731
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]) + "\n"


def write_outputs(study: Any, out_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """Write trials.jsonl, pareto.csv, pareto.md and pareto/trial_<n>.yaml; returns (records, pareto rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = study_records(study)
    objectives = list(zip(study_metric_names(study), [d.name.lower() for d in study.directions]))
    tmp = out / f"trials.jsonl.{os.getpid()}.tmp"  # workers sharing --out each write whole files
    tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
    tmp.replace(out / "trials.jsonl")
    front = pareto_front(records, objectives)
    rows = pareto_rows(front, objectives)
    with open(out / "pareto.csv", "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (out / "pareto.md").write_text(f"# Pareto front of study {study.study_name}\n\n" + pareto_markdown(rows))
    pdir = out / "pareto"
    pdir.mkdir(exist_ok=True)
    keep = {f"trial_{r['number']}.yaml" for r in front}
    for old in pdir.glob("trial_*.yaml"):
        if old.name not in keep:
            old.unlink(missing_ok=True)  # another worker may have removed it already
    for r in front:
        if r.get("config"):
            (pdir / f"trial_{r['number']}.yaml").write_text(yaml.safe_dump(r["config"]["model"], sort_keys=False))
    return records, rows
