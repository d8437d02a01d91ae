"""Search report from storage alone: records, Pareto tables/configs and PNG plots, no training.

``python -m plsearch.report --out results/ipl_epl`` redraws everything from ``results/ipl_epl/study.db``;
``--study NAME --storage URL --out DIR`` reads any Optuna storage. Plots (in DIR):
``pareto.png`` (val Dice vs MACs and vs params, log x, with the preset references from
``references.json``), ``history.png``, ``hypervolume.png`` (multi-objective),
``importances.png`` (skipped with a note below 4 trained trials) and ``curves.png`` (every trial's
val Dice per epoch, pruned ones marked where they stopped; for multi-objective studies also stored
in the study as an optuna-dashboard figure and note).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Mapping

from plsearch.search.studies import ReportError, load_study, open_study_ref  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)
MIN_TRIALS_FOR_IMPORTANCE = 4


def _constraints(space: Mapping[str, Any]) -> dict[str, float]:
    """The space's budgets as numbers (the stored raw YAML may hold ``6.0e7`` as a string, or a bound
    relative to a preset, ``{at_most: plnet}``, resolved at the space's fidelity)."""
    from plsearch.search.budgets import resolve_budget

    fixed = {k: v for k, v in space.items() if isinstance(k, str) and "." in k}
    fixed.update(space.get("fidelity") or {} if isinstance(space.get("fidelity"), Mapping) else {})
    out = {}
    for k, v in (space.get("constraints") or {}).items() if isinstance(space.get("constraints"), Mapping) else ():
        try:
            out[str(k)] = resolve_budget(str(k), v, fixed)[0] if isinstance(v, Mapping) else float(v)
        except (TypeError, ValueError):
            continue
    return out


def _importances(study: Any, records: list[dict]) -> dict[str, float] | str:
    """fANOVA importances for val Dice over the trained trials, or a note saying why not."""
    import optuna

    from plsearch.plots.study import trained

    good = trained(records)
    if len(good) < MIN_TRIALS_FOR_IMPORTANCE:
        return f"importances skipped: {len(good)} trained trial(s), need {MIN_TRIALS_FOR_IMPORTANCE}"
    numbers = {r["number"] for r in good}
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in numbers]
    varying = {k for k in trials[0].params if len({repr(t.params.get(k)) for t in trials}) > 1}
    if not varying:
        return "importances skipped: no parameter varies across the trained trials"
    tmp = optuna.create_study(direction="maximize")
    for t in trials:
        tmp.add_trial(
            optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, value=float(t.user_attrs["metrics"]["val_dice"])
            )
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(tmp, params=sorted(varying)))
    except (ValueError, RuntimeError) as e:
        return f"importances skipped: {e}"


def count_degenerate(records: list[dict]) -> int:
    """Trials recorded infeasible because they were no better than a trivial predictor."""
    return sum(1 for r in records if str(r.get("fail_reason") or "").startswith("degenerate"))


def _curves(study: Any, records: list[dict], out: Path, multi: bool) -> dict[str, str]:
    """curves.png (val Dice per epoch, every trial) and, for multi-objective studies, the same as an
    optuna-dashboard figure and note stored in the study (the dashboard draws intermediate values only
    for single-objective studies)."""
    from plsearch.plots.curves import plot_learning_curves, save_to_dashboard
    from plsearch.search.asha import rung_epochs

    floor = next(
        (
            t.user_attrs["trivial_val_dice"].get("best")
            for t in study.get_trials(deepcopy=False)
            if isinstance(t.user_attrs.get("trivial_val_dice"), dict)
        ),
        None,
    )
    pruning = (study.user_attrs.get("plsearch:space") or {}).get("pruning")
    epochs = next(((r.get("config") or {}).get("train", {}).get("epochs") for r in records if r.get("config")), None)
    rungs: tuple[int, ...] = ()
    if isinstance(pruning, Mapping) and pruning.get("name") == "asha" and epochs:
        try:
            rungs = rung_epochs(int(pruning.get("min_epochs", 1)), int(pruning.get("eta", 3)), int(epochs))
        except (TypeError, ValueError):
            rungs = ()
    out_ = {
        "curves": str(
            plot_learning_curves(
                records,
                out / "curves.png",
                floor=floor,
                rungs=rungs,
                title=f"{study.study_name}: validation Dice per epoch",
            )
        )
    }
    if multi:
        try:
            out_["dashboard"] = save_to_dashboard(study, records, floor)
        except Exception as e:  # noqa: BLE001  (a read-only storage must not cost the report its PNGs)
            log.warning("could not store the learning curves in the study for optuna-dashboard: %s", e)
            out_["dashboard"] = f"skipped: {e}"
    return out_


def draw_plots(study: Any, out_dir: str | Path, references: Mapping[str, dict] | None = None) -> dict[str, str]:
    """Write the PNGs into ``out_dir``; returns ``{name: path or 'skipped: why'}``."""
    from plsearch.plots import study as plots
    from plsearch.search.pareto import beaten_by, pareto_front
    from plsearch.search.records import study_metric_names, study_records
    from plsearch.search.references import load_references

    out = Path(out_dir)
    refs = references if references is not None else load_references(out)
    records = study_records(study)
    objectives = list(zip(study_metric_names(study), [d.name.lower() for d in study.directions]))
    cons = _constraints(study.user_attrs.get("plsearch:space") or {})
    front_records = pareto_front(records, objectives)
    front = [r["number"] for r in front_records]
    beaten = {
        r["number"]: names for r in front_records if (names := ",".join(beaten_by(r["values"], refs, objectives)))
    }
    result: dict[str, str] = {}
    degenerate = count_degenerate(records)
    title = f"{study.study_name}: validation Dice against size"
    if degenerate:
        title += f" ({degenerate} degenerate trial{'s' if degenerate > 1 else ''} left out)"
    result["pareto"] = str(
        plots.plot_pareto(
            records,
            out / "pareto.png",
            references=refs,
            constraints=cons,
            pareto_numbers=front,
            title=title,
            beaten=beaten,
            beaten_on=[n for n, _ in objectives],
        )
    )
    result["history"] = str(
        plots.plot_history(records, out / "history.png", title=f"{study.study_name}: optimization history")
    )
    if len(objectives) > 1:
        hv = plots.hypervolume_history(records, objectives, cons)
        result["hypervolume"] = str(
            plots.plot_hypervolume(
                hv,
                out / "hypervolume.png",
                title=f"{study.study_name}: hypervolume of {', '.join(n for n, _ in objectives)}",
            )
        )
    else:
        result["hypervolume"] = "skipped: single-objective study"
    result.update(_curves(study, records, out, multi=len(objectives) > 1))
    imp = _importances(study, records)
    if isinstance(imp, str):
        result["importances"] = imp
        (out / "importances.png").unlink(missing_ok=True)
    else:
        result["importances"] = str(
            plots.plot_importances(imp, out / "importances.png", title=f"{study.study_name}: parameter importances")
        )
    return result


def write_report(study: Any, out_dir: str | Path) -> tuple[list[dict], list[dict], dict[str, str]]:
    """Records + Pareto files + plots; returns (records, pareto rows, plots)."""
    from plsearch.search.records import write_outputs

    records, rows = write_outputs(study, out_dir)
    return records, rows, draw_plots(study, out_dir)
