"""Confirm a search's front where it was not chosen: retrain with seeds, measure on the test split.

A search picks its front by validation Dice, one seed, at a short fidelity. ``confirm`` takes the
front (or chosen trials) and the preset references, retrains each at a final fidelity (the space's
``confirm:`` section, then ``--set``) with several seeds (or K-fold cross-validation for small data
sets), evaluates every run's best-validation weights on the **test** split, and says which configs
stay non-dominated once the spread is counted:

    A dominates B when A is no larger in every size objective of the search (params, MACs) and its
    mean test Dice is higher by more than the pooled standard error, sqrt(sd_A^2/n_A + sd_B^2/n_B).

The runs go through ``plsearch.studies.runs`` (resumable, ``--workers``), study ``<search study>-confirm``
in ``<out>/confirm/runs.journal`` (or beside the search's study in a database storage).
Run it from the shell with ``python -m plsearch.confirm``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plsearch.config.gate import resolve
from plsearch.config.schema import RunConfig
from plsearch.search.registries import COUNTED_SIZES, SIZE_METRICS
from plsearch.studies.runs import Job

__all__ = [
    "Candidate",
    "ConfirmError",
    "aggregate",
    "confirm_jobs",
    "dominates",
    "fold_split_files",
    "mark_nondominated",
    "reference_candidates",
    "search_candidates",
    "size_objectives",
]


class ConfirmError(ValueError):
    """The study or the chosen trials cannot be confirmed; the message names the fix."""


@dataclass(frozen=True)
class Candidate:
    """A config to confirm: a search trial (``number``) or a preset (``kind`` "preset")."""

    label: str
    kind: str
    config: RunConfig
    number: int | None = None
    search_val_dice: float | None = None
    params: int | None = None
    macs: int | None = None


def size_objectives(study: Any) -> list[str]:
    """The search's size objectives (params, macs; latency falls back to macs), else both sizes."""
    from plsearch.search.records import study_metric_names

    directions = study.directions
    names = [n for n, d in zip(study_metric_names(study), directions) if n in SIZE_METRICS and d.name == "MINIMIZE"]
    names = [n if n in COUNTED_SIZES else "macs" for n in names]  # latency is not measured here: its proxy
    return list(dict.fromkeys(names)) or list(COUNTED_SIZES)


def _candidate(rec: Mapping[str, Any]) -> Candidate:
    prof, metrics = rec.get("profile") or {}, rec.get("metrics") or {}
    return Candidate(
        f"trial_{rec['number']}",
        "trial",
        RunConfig.from_dict(rec["config"]),
        rec["number"],
        metrics.get("val_dice"),
        prof.get("params"),
        prof.get("macs"),
    )


def search_candidates(study: Any, trials: Sequence[int] | None = None) -> list[Candidate]:
    """The chosen ``trials`` of ``study`` (each must exist and have trained), else its validation front."""
    from plsearch.search.records import study_metric_names, study_records

    records = study_records(study)
    if trials:
        numbers = [t.number for t in study.get_trials(deepcopy=False)]
        by_number = {r["number"]: r for r in records}
        out = []
        for n in trials:
            if n not in numbers:
                have = f"0..{max(numbers)}" if numbers else "none"
                raise ConfirmError(
                    f"trial {n} does not exist in study {study.study_name!r} (trials {have}); "
                    "choose from pareto.md or trials.jsonl"
                )
            rec = by_number.get(n)
            if (
                rec is None
                or rec["state"] != "COMPLETE"
                or not rec.get("feasible")
                or not rec.get("config")
                or not rec.get("metrics")
            ):
                why = (rec or {}).get("fail_reason") or ("not finished" if rec is None else rec["state"].lower())
                raise ConfirmError(
                    f"trial {n} of study {study.study_name!r} was not trained ({why}); choose a trained feasible trial"
                )
            out.append(_candidate(rec))
        return out
    from plsearch.search.pareto import pareto_front

    objectives = list(zip(study_metric_names(study), [d.name.lower() for d in study.directions]))
    front = [r for r in pareto_front(records, objectives) if r.get("config") and r.get("metrics")]
    if not front:
        raise ConfirmError(
            f"study {study.study_name!r} has no trained feasible trial on its front yet; run the "
            "search first, or name trials with --trials"
        )
    return [_candidate(r) for r in front]


def reference_candidates(
    space: Any, extra: Mapping[str, Any] | None = None, cached: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Candidate]:
    """The space's presets at the search's fidelity, each at the learning rate its reference was trained
    with (``cached``: the search's ``references.json``), so confirm follows the search's rate rule."""
    from plsearch.graph.wiring import estimate
    from plsearch.search.references import reference_config

    out = []
    for name in space.references:
        cfg = reference_config(space, name, extra)
        rec = (cached or {}).get(name) or {}
        lr = ((rec.get("config") or {}).get("train") or {}).get("lr")
        if lr is not None:  # the rate the search's learning-rate rule (plsearch.train.lr) chose for this preset
            cfg = resolve(cfg, {"train.lr": lr})
        est = estimate(cfg.model, cfg.data.image_size)
        val = (rec.get("metrics") or {}).get("val_dice")
        out.append(Candidate(name, "preset", cfg, None, val, int(est.params), int(est.macs)))
    return out


def fold_split_files(cfg: RunConfig, k: int, folder: str | Path, seed: int = 0) -> list[Path]:
    """Write ``k`` split CSVs (``id,split``) over every sample of ``cfg.data.root``: fold ``i`` is the
    test split, and validation is carved (seeded, ``data.val_fraction``) from the other folds."""
    import numpy as np

    from plsearch.data.dataset import list_ids

    if not cfg.data.root:
        raise ConfirmError("--folds needs a data folder; the search ran on the synthetic set (use --seeds)")
    ids = list_ids(cfg.data)  # the samples of cfg.data.root in any registered format
    if len(ids) < 2 * k:
        raise ConfirmError(f"--folds {k} needs at least {2 * k} images, {cfg.data.root} has {len(ids)}; lower --folds")
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(ids)), k)
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, test in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != i])
        n_val = max(1, round(len(rest) * cfg.data.val_fraction))
        val = set(rng.permutation(rest)[:n_val].tolist())
        split = {int(t): "test" for t in test}
        split.update({int(r): "val" if int(r) in val else "train" for r in rest})
        p = out_dir / f"fold_{i}.csv"
        p.write_text("id,split\n" + "".join(f"{ids[j]},{split[j]}\n" for j in range(len(ids))))
        paths.append(p.resolve())
    return paths


def confirm_jobs(
    cands: Sequence[Candidate], overrides: Mapping[str, Any], *, seeds: int = 3, folds: Sequence[Path] = ()
) -> list[Job]:
    """Seed-major (or fold-major) jobs, so an interrupted confirm leaves every config with equal runs."""
    jobs = []
    runs = [(f"fold_{i}", {"data.split_csv": str(p), "train.seed": 0}) for i, p in enumerate(folds)] or [
        (f"seed_{s}", {"train.seed": s}) for s in range(seeds)
    ]
    for tag, over in runs:
        for c in cands:
            cfg = resolve(c.config, {**_for(c, overrides), **over})
            jobs.append(
                Job(
                    f"{c.label}/{tag}",
                    cfg,
                    group=c.label,
                    info={
                        "kind": c.kind,
                        "number": c.number,
                        "search_val_dice": c.search_val_dice,
                        "params_count": c.params,
                        "macs": c.macs,
                    },
                )
            )
    return jobs


def _for(c: Candidate, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` for candidate ``c``: a preset scales ``model.base_width`` like the search's references
    (preset width x value / 32, so U-Net keeps twice PL-Net's width) instead of taking it as is."""
    out = dict(overrides)
    if c.kind == "preset" and "model.base_width" in out:
        from plsearch.config.presets import preset_config

        out["model.base_width"] = max(1, round(preset_config(c.label).base_width * out["model.base_width"] / 32))
    return out


def _ms(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan
    return m, sd


def aggregate(rows: Sequence[Mapping[str, Any]], cands: Sequence[Candidate]) -> list[dict[str, Any]]:
    """One summary per candidate: test Dice/IoU mean, sd and every run's value, val Dice, degenerate runs."""
    out = []
    for c in cands:
        rs = [r for r in rows if r["group"] == c.label and not r.get("fail_reason")]
        failed = [r for r in rows if r["group"] == c.label and r.get("fail_reason")]
        dice, iou = [r["test_dice"] for r in rs], [r["test_iou"] for r in rs]
        (dm, dsd), (im, isd), (vm, _) = _ms(dice), _ms(iou), _ms([r["val_dice"] for r in rs])
        out.append(
            {
                "label": c.label,
                "kind": c.kind,
                "trial": c.number,
                "params": c.params,
                "macs": c.macs,
                "search_val_dice": c.search_val_dice,
                "n": len(rs),
                "failed": len(failed),
                "test_dice": dm,
                "test_dice_sd": dsd,
                "test_iou": im,
                "test_iou_sd": isd,
                "val_dice": vm,
                "test_dice_runs": [round(d, 4) for d in dice],
                "degenerate": sum(bool(r.get("degenerate")) for r in rs),
                "trivial_dice": rs[0].get("test_trivial_dice") if rs else None,
            }
        )
    return out


def _se(x: Mapping[str, Any]) -> float:
    sd = x["test_dice_sd"]
    return 0.0 if x["n"] < 2 or math.isnan(sd) else sd / math.sqrt(x["n"])


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], sizes: Sequence[str] = COUNTED_SIZES) -> bool:
    """A is no larger than B in every size and better in mean test Dice by more than the pooled standard
    error ``sqrt(se_A^2 + se_B^2)`` (a single run counts as se 0)."""
    if a is b or not a["n"] or not b["n"]:
        return False
    if any(a[s] is None or b[s] is None or a[s] > b[s] for s in sizes):
        return False
    return a["test_dice"] - b["test_dice"] > math.hypot(_se(a), _se(b))


def mark_nondominated(items: Sequence[dict[str, Any]], sizes: Sequence[str] = COUNTED_SIZES) -> None:
    """Set ``non_dominated`` and ``dominated_by`` (labels) on each item; degenerate configs (every run no
    better than the trivial predictor) are never non-dominated."""
    for b in items:
        by = [a["label"] for a in items if dominates(a, b, sizes)]
        b["dominated_by"] = by
        b["non_dominated"] = bool(b["n"]) and not by and b["degenerate"] < b["n"]
