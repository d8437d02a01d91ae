"""Trial records (one plain dict per finished trial) and the files that hold them.

Everything here is derived from the study's storage, so ``plsearch.report.study`` can rewrite it any time:
``trials.jsonl`` (one record per finished trial), ``pareto.csv``, ``pareto.md`` and
``pareto/trial_<n>.yaml`` (the ``ModelConfig`` dict that ``PLNet.from_config`` loads). The front
and its table are ``plsearch.search.pareto``'s; versions and git revision ``plsearch.search.provenance``'s.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from plsearch.search.pareto import (  # noqa: F401  (re-exported: the names callers know)
    beaten_line,
    degenerate_line,
    fmt_count,
    params_summary,
    pareto_front,
    pareto_markdown,
    pareto_rows,
)
from plsearch.search.provenance import environment  # noqa: F401  (re-exported)

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
CURVE_ATTR = "val_dice_curve"


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
        "number": t.number,
        "state": t.state.name,
        "feasible": bool(ua.get("feasible", False)) if t.state.name == "COMPLETE" else None,
        "params": dict(t.params),
        "values": values,
        "metrics": ua.get("metrics"),
        "profile": ua.get("profile"),
        "constraints": dict(t.constraints),
        "val_dice_curve": ua.get(CURVE_ATTR),
        "seed": ua.get("seed"),
        "config": ua.get("config"),
        "versions": ua.get("versions"),
        "git_rev": ua.get("git_rev"),
        "worker": ua.get("worker"),
        "seconds": seconds,
        "fail_reason": ua.get("fail_reason"),
        "trivial": trivial_of(ua),
        "duplicate_of": ua.get("duplicate_of"),
        "requeued": ua.get("requeued", False),
        "surplus": ua.get("surplus", False),
        "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
    }
    return _finite(rec)


def trivial_of(ua: Mapping[str, Any]) -> dict[str, Any] | None:
    """The trivial predictors' val Dice on the trial's split and the margin a trial had to beat it by
    (``margin`` None: a study from before the margin was recorded)."""
    floor = ua.get("trivial_val_dice")
    if not isinstance(floor, Mapping) or floor.get("best") is None:
        return None
    return {**floor, "margin": ua.get("trivial_margin")}


def study_records(study: Any) -> list[dict[str, Any]]:
    """Records of every finished trial of ``study``, in trial-number order."""
    names = study_metric_names(study)
    return [trial_record(t, names) for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED]


def study_metric_names(study: Any) -> list[str]:
    return list(study.metric_names or [f"objective_{i}" for i in range(len(study.directions))])


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
    from plsearch.search.references import load_references

    refs = load_references(out)
    rows = pareto_rows(front, objectives, refs)
    with open(out / "pareto.csv", "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (out / "pareto.md").write_text(
        f"# Pareto front of study {study.study_name}\n\n"
        + pareto_markdown(rows)
        + "\n"
        + degenerate_line(records)
        + beaten_line(rows, refs, objectives)
    )
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
