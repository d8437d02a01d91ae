"""The trial objective: sampled params -> RunConfig -> profile -> (constraints) -> fit -> metric values.

Outcomes, as recorded in storage (user attr ``fail_reason`` says why a trial did not train normally):

- invalid combination (``ConfigError``, e.g. ``bsc`` with ``transition: none``): COMPLETE but
  infeasible (constraint ``valid`` = 1), not trained;
- over a budget in ``constraints:``: COMPLETE but infeasible (``<metric>`` > 0), not trained;
- degenerate: trained, but its best val Dice does not beat the best trivial predictor's (all background
  or all foreground, ``plsearch.train.metrics.trivial_dice`` on the same split) by at least the space's
  ``trivial_margin`` (default 0.05; with 0, by anything): COMPLETE but infeasible (``valid`` = 1, user
  attr ``degenerate``), never on the front;
- non-finite loss (``NonFiniteLossError``): COMPLETE but infeasible (``valid`` = 1): the config
  does not train at this learning rate, which the sampler should learn to avoid;
- out of memory: FAIL (a property of the device, not of the config);
- pruned: PRUNED, with the per-epoch ``val_dice_curve``.
Infeasible trials report Dice/IoU 0 and the sizes they were measured at (inf where unknown), and
never enter the Pareto front.

Custom metrics: ``@register_metric("name", "maximize")`` on ``f(ctx: MetricContext) -> float``, or
``metric: "package.module:function"`` in ``objectives:`` (direction from ``f.direction`` or given); the
metric registry lives in ``plsearch.search.registries``, the process's data cache in
``plsearch.search.datacache`` (both re-exported here).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from plsearch.config.schema import ConfigError, RunConfig
from plsearch.search.datacache import load_data
from plsearch.search.registries import (  # noqa: F401  (re-exported: the names callers know)
    BUILTIN_METRICS,
    Metric,
    MetricContext,
    register_metric,
    resolve_metric,
)
from plsearch.search.start import start_index

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

log = logging.getLogger(__name__)

__all__ = [
    "Objective",
    "Outcome",
    "train_and_score",
    "load_data",
    "Metric",
    "MetricContext",
    "register_metric",
    "resolve_metric",
    "BUILTIN_METRICS",
]


@dataclass
class Outcome:
    """How a trial ended: ``state`` "complete" | "pruned" | "fail"; ``values`` for complete ones."""

    state: str
    values: list[float] | None = None
    feasible: bool = True
    reason: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, (RuntimeError, MemoryError)) and ("out of memory" in str(e) or "can't allocate" in str(e))
    )


class Objective:
    """Runs one trial of ``space``. ``extra`` holds CLI overrides (``{"data.root": ..., "train.device": ...}``).

    Call it with an Optuna ``Trial``; it returns an ``Outcome`` and records user attrs on the trial.
    ``KeyboardInterrupt`` propagates (the runner handles it).
    """

    def __init__(self, space: "SearchSpace", extra: Mapping[str, Any] | None = None) -> None:
        self.space = space
        self.extra = dict(extra or {})
        self.metrics = [resolve_metric(o.name) for o in space.objectives]
        self._trivial: dict[Any, dict[str, float]] = {}
        self.artifacts: Any = (
            None  # an artifact store: keep each trained trial's best weights (plsearch.infer.artifacts)
        )
        self.keep_top: int | None = None  # prune kept weights to the Pareto set + top k (None: artifacts' default)

    def worst(self, prof: Mapping[str, Any]) -> list[float]:
        """Objective values of an infeasible trial: 0 Dice/IoU, measured sizes, else the worst value."""
        out = []
        for o in self.space.objectives:
            if o.name in ("val_dice", "val_iou"):
                out.append(0.0)
            elif prof.get(o.name) is not None:
                out.append(float(prof[o.name]))
            else:
                out.append(-math.inf if o.direction == "maximize" else math.inf)
        return out

    def config(self, params: Mapping[str, Any]) -> RunConfig:
        """The resolved RunConfig (through the gate; in_channels follows the data). Raises ConfigError."""
        cfg = self.space.build(params, self.extra)
        return self.space.build(params, self.extra, data=load_data(cfg.data, cfg.model.num_classes))

    def measure(self, cfg: RunConfig) -> dict[str, Any]:
        """params and MACs analytically (milliseconds); latency on the built model if asked."""
        from plsearch.graph.wiring import estimate

        est = estimate(cfg.model, cfg.data.image_size)
        prof: dict[str, Any] = {"params": int(est.params), "macs": int(est.macs), "latency_ms": None}
        if self.space.latency:
            import plsearch
            from plsearch.config.gate import check_device
            from plsearch.nn.model import PLNet

            p = plsearch.profile(
                PLNet.from_config(cfg.model), cfg.data.image_size, memory=False, device=check_device(cfg.train.device)
            )
            prof["latency_ms"] = p.latency_ms
        return prof

    def constraints(self, prof: Mapping[str, Any] | None, valid: bool) -> dict[str, float]:
        """Optuna constraint values (<= 0 feasible); the same keys on every trial, in the same order."""
        out = {"valid": 0.0 if valid else 1.0}
        for name, limit in self.space.constraints:
            value = None if prof is None else prof.get(name)
            out[name] = 1.0 if value is None else (float(value) - limit) / limit
        return out

    def __call__(self, trial: Any) -> Outcome:
        from plsearch.search.pruning import make_epoch_callback

        params = self.space.sample(trial)
        try:
            cfg = self.config(params)  # the gate refuses images smaller than the network's stride
            prof = self.measure(cfg)
        except ConfigError as e:
            return self._infeasible(trial, None, f"invalid config: {e}")
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("profile", prof)
        trial.set_user_attr("seed", cfg.train.seed)
        cons = self.constraints(prof, True)
        over = [f"{k} {prof[k]:.4g} > {lim:.4g}" for k, lim in self.space.constraints if cons[k] > 0]
        if over:
            return self._infeasible(trial, prof, "over budget: " + ", ".join(over), valid=True)
        dup = _duplicate_of(trial, cfg.to_dict())
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup.number)
            for key in ("metrics", "val_dice_curve"):
                if key in dup.user_attrs:
                    trial.set_user_attr(key, dup.user_attrs[key])
            trial.set_user_attr("feasible", True)
            self._set_constraints(trial, prof, True)
            return Outcome("complete", list(dup.values), attrs={"duplicate_of": dup.number})
        floor = self.trivial(cfg)
        trial.set_user_attr("trivial_val_dice", floor)
        trial.set_user_attr("trivial_margin", self.space.trivial_margin)  # the rule this trial was held to
        start = start_index(self.space.start, params)
        if start is not None:
            trial.set_user_attr("start", start)  # one of the space's start configs: never pruned
        callback = make_epoch_callback(
            trial,
            self.space,
            prof,
            cfg.train.epochs,
            floor=floor["best"] + self.space.trivial_margin,
            start=start is not None,
        )
        return self._train(trial, cfg, prof, callback, floor)

    def trivial(self, cfg: RunConfig) -> dict[str, float]:
        """The trivial predictors' val Dice on this trial's validation split (``plsearch.train.metrics.trivial_dice``),
        computed once per split."""
        from plsearch.train.metrics import trivial_dice

        key = (cfg.data, cfg.model.num_classes)
        if key not in self._trivial:
            self._trivial[key] = trivial_dice(load_data(*key)["val"].masks, cfg.model.num_classes)
        return self._trivial[key]

    def _set_constraints(self, trial: Any, prof: Mapping[str, Any] | None, valid: bool) -> None:
        for name, value in self.constraints(prof, valid).items():
            trial.set_constraint(name, value)

    def _infeasible(self, trial: Any, prof: Mapping[str, Any] | None, reason: str, valid: bool = False) -> Outcome:
        self._set_constraints(trial, prof, valid)
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("feasible", False)
        return Outcome("complete", self.worst(prof or {}), feasible=False, reason=reason)

    def _train(
        self,
        trial: Any,
        cfg: RunConfig,
        prof: dict[str, Any],
        callback: Callable,
        floor: Mapping[str, float] | None = None,
    ) -> Outcome:
        import optuna
        import torch

        from plsearch.train.fit import NonFiniteLossError

        try:
            keep = (lambda model: self._keep(trial, model, cfg)) if self.artifacts is not None else None
            metrics = train_and_score(cfg, prof, self.metrics, on_epoch_end=callback, keep=keep)
        except optuna.TrialPruned as e:
            self._set_constraints(trial, prof, True)
            trial.set_user_attr("fail_reason", f"pruned: {e}")
            return Outcome("pruned", reason=f"pruned: {e}")
        except NonFiniteLossError as e:
            return self._infeasible(trial, prof, f"non-finite loss: {e}")
        except (RuntimeError, MemoryError) as e:
            if not _is_oom(e):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            reason = f"out of memory: {str(e).splitlines()[0][:200]}"
            trial.set_user_attr("fail_reason", reason)
            return Outcome("fail", reason=reason)
        trial.set_user_attr("metrics", metrics)
        values = [float(metrics[m.name]) if m.name in metrics else float(prof[m.name]) for m in self.metrics]
        if any(math.isnan(v) for v in values):
            return self._infeasible(trial, prof, f"objective values {values} contain NaN")
        margin = self.space.trivial_margin
        if floor is not None and not learned(metrics["val_dice"], floor["best"], margin):  # about a constant
            which = "all-background" if floor["all_background"] >= floor["all_foreground"] else "all-foreground"
            trial.set_user_attr("degenerate", True)
            need = (
                f"below {which} {floor['best']:.4f} + margin {margin:g}"
                if margin
                else f"<= {which} {floor['best']:.4f}"
            )
            return self._infeasible(
                trial,
                prof,
                f"degenerate: val Dice {metrics['val_dice']:.4f} {need} (a trivial predictor on the same split)",
            )
        trial.set_user_attr("feasible", True)
        self._set_constraints(trial, prof, True)
        return Outcome("complete", values)

    def _keep(self, trial: Any, model: Any, cfg: RunConfig) -> None:
        """Store the trained weights as an artifact of ``trial``, then bound the disk (Pareto set + top k)."""
        from plsearch.infer.artifacts import DEFAULT_KEEP_TOP, keep_model, prune

        try:
            keep_model(trial, model, self.artifacts, run_config=cfg)
            prune(trial.study, self.artifacts, keep_top=DEFAULT_KEEP_TOP if self.keep_top is None else self.keep_top)
        except Exception as e:  # noqa: BLE001 - a full disk must not fail a trained trial
            log.warning("trial %d: could not keep its weights (%s)", trial.number, e)


def train_and_score(
    cfg: RunConfig,
    prof: Mapping[str, Any],
    metrics: Sequence[Metric] = (),
    on_epoch_end: Callable[[int, dict], Any] | None = None,
    keep: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` on the cached data (``plsearch.train.run.run_config``) and return the metrics dict.

    ``keep(model)`` is called with the trained model (best-epoch weights), e.g. to store them.

    Keys: ``val_dice`` (best epoch), ``val_iou`` (same epoch), ``best_epoch``, ``epochs_run``,
    ``train_seconds``, plus one per custom metric in ``metrics``.
    """
    from plsearch.train.run import build_model, run_config

    splits = load_data(cfg.data, cfg.model.num_classes)
    model = build_model(cfg)  # initial weights are part of the trial's seed
    t0 = time.perf_counter()
    result = run_config(cfg, splits, model=model, on_epoch_end=on_epoch_end).fit_result
    best = next((r for r in result.history if r["epoch"] == result.best_epoch), result.history[-1])
    out = {
        "val_dice": float(result.best_val_dice),
        "val_iou": float(best.get("val_iou", math.nan)),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": round(time.perf_counter() - t0, 3),
    }
    if keep is not None:
        keep(model.eval())
    ctx = MetricContext(model.eval(), cfg, splits, result, out, dict(prof))
    for m in metrics:
        if m.fn is not None:
            out[m.name] = float(m.fn(ctx))
    return out


def learned(val_dice: float, trivial: float, margin: float) -> bool:
    """The trivial-predictor rule: val Dice beats the trivial predictors' by at least ``margin`` (and
    by something when ``margin`` is 0). The 1e-9 keeps a gain of exactly ``margin`` from failing on
    float rounding (0.2506 - 0.2006 < 0.05 in binary)."""
    gain = val_dice - trivial
    return gain > 0 and gain >= margin - 1e-9


def _duplicate_of(trial: Any, config: dict) -> Any:
    """A finished, trained trial with the same resolved config (its values are reused, not retrained)."""
    from optuna.trial import TrialState

    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("config") == config and t.user_attrs.get("feasible") and "metrics" in t.user_attrs:
            return t
    return None
