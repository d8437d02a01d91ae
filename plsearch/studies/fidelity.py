"""Is a cheap fidelity a fair judge? Train a seeded sample of a space at a low and a high fidelity and
measure how well the low one's ranking predicts the high one's.

A search ranks trials by validation Dice after a short training. That ranking is worth something
only as far as it agrees with a longer training's ranking. This module samples ``K`` valid configs
of a space (seeded random sampling, the space's budget constraints applied) plus the space's preset
references, trains each at both fidelities through ``plsearch.studies.runs`` (resumable, shared across
workers), and reports Spearman's rho and Kendall's tau with bootstrap 95 % intervals, top-k overlap
and the regret of choosing by the low fidelity. The low side is what a search sees (best-epoch
validation Dice); the high side is held-out **test** Dice of the long run's best-validation weights
(``high_metric="val_dice"`` compares like with like instead).

By default the high run trains with another seed than the low run (``high_seed``: the low run's
``train.seed`` + 1; the data split, ``data.seed``, is the same), so the figures measure how well a short
run predicts an independent long run. With ``same_seed=True`` both runs share the seed and differ only
in their overrides: when only ``train.epochs`` differs, the high run's first epochs ARE the low run, and
the figures are a same-run upper bound (a continued run), not a prediction of a fresh one.

Run it from the shell with ``python -m plsearch.fidelity``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plsearch.config.gate import resolve
from plsearch.config.schema import ConfigError, RunConfig
from plsearch.studies.rankstats import bootstrap_ci, kendall, regret, spearman, top_k_overlap
from plsearch.studies.runs import Job

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.search.space import SearchSpace

__all__ = [
    "FidelityConfig",
    "analyse",
    "cheaper_lows",
    "fidelity_jobs",
    "high_seed",
    "markdown",
    "plot",
    "reading",
    "sample_configs",
    "truncate_low",
    "write_outputs",
]


@dataclass(frozen=True)
class FidelityConfig:
    """``low``/``high``: dotted-path overrides applied on top of the space's values and ``extra``.

    ``same_seed``: the high run keeps the low run's ``train.seed`` (a continued run: a same-run upper
    bound); by default it trains with ``high_seed`` of it (independent seeds).
    """

    low: Mapping[str, Any]
    high: Mapping[str, Any]
    configs: int = 24
    seed: int = 0
    references: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    high_metric: str = "test_dice"
    same_seed: bool = False


def high_seed(low_seed: int) -> int:
    """The high run's ``train.seed`` with independent seeds: the low run's + 1 (wrapping at numpy's 2**32)."""
    return (int(low_seed) + 1) % 2**32


def reading(fc: FidelityConfig, rows: Sequence[Mapping[str, Any]] = ()) -> str:
    """What the figures measure, for the report: "independent seeds (low seed X, high seed Y)" (the
    ``train.seed`` of the runs in ``rows``) or "same run continued (same-run upper bound)"."""
    if fc.same_seed:
        return "same run continued (same-run upper bound)"

    def seeds(side: str) -> str:
        found = sorted({int(r["config"]["train"]["seed"]) for r in rows if r.get("side") == side and r.get("config")})
        return ", ".join(map(str, found))

    lo, hi = seeds("low"), seeds("high")
    if not lo or not hi:
        return "independent seeds (high seed = low seed + 1)"
    return f"independent seeds (low seed {lo}, high seed {hi})"


def sample_configs(
    space: SearchSpace, k: int, seed: int = 0, extra: Mapping[str, Any] | None = None
) -> list[tuple[str, dict[str, Any], RunConfig]]:
    """``k`` distinct valid configs of ``space`` drawn at random (seeded), within its constraints.

    Returns ``(label, params, config)`` triples, labels ``c00``, ``c01``, ...; raises ``ValueError``
    when the space yields fewer than ``k`` distinct valid configs in ``50 k`` draws.
    """
    import optuna

    from plsearch.search.objective import Objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = Objective(space, extra)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[tuple[str, dict[str, Any], RunConfig]] = []
    seen: set[str] = set()
    for _ in range(50 * k):
        if len(out) == k:
            break
        trial = study.ask()
        params = space.sample(trial)
        study.tell(trial, 0.0)
        try:
            cfg = objective.config(params)
        except ConfigError:
            continue
        if cfg.data.image_size < cfg.model.total_stride():
            continue
        prof = objective.measure(cfg)
        if any(objective.constraints(prof, True)[name] > 0 for name, _ in space.constraints):
            continue
        key = json.dumps(cfg.model.to_dict(), sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append((f"c{len(out):02d}", params, cfg))
    if len(out) < k:
        raise ValueError(
            f"the space gave only {len(out)} distinct valid configs within its constraints in {50 * k} "
            f"draws; ask for --configs {len(out)} or widen the space"
        )
    return out


def _with(cfg: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    return resolve(cfg, dict(overrides)) if overrides else cfg


def fidelity_jobs(space: SearchSpace, fc: FidelityConfig) -> list[Job]:
    """Two jobs per config, the sampled configs then the presets: ``<label>/low`` at the space's seed, and
    ``<label>/high-s<seed>`` at another seed (``high_seed``; a ``train.seed`` in ``fc.high`` that differs
    from the low run's is kept), or ``<label>/high`` at the low run's seed when ``fc.same_seed``.

    The seed is in the high key so that a runs study holding the old same-seed ``<label>/high`` runs is
    not refused (``plsearch.studies.runs.submit`` refuses a key stored with another config): each reading has its
    own keys, and ``same_seed=True`` resumes the old ones."""
    from plsearch.graph.wiring import estimate
    from plsearch.search.references import reference_config

    entries: list[tuple[str, dict[str, Any], RunConfig]] = [
        (label, {"params": params}, cfg) for label, params, cfg in sample_configs(space, fc.configs, fc.seed, fc.extra)
    ]
    if fc.references:
        # the presets get their rate by the search's rule (plsearch.train.lr): each candidate rate of the
        # space's train.lr axis is a run; analyse() keeps, per side, the one best on validation
        from plsearch.train.lr import lr_candidates

        rates = lr_candidates(space)
        for name in space.references:
            cfg = reference_config(space, name, fc.extra)
            if not rates:
                entries.append((name, {"preset": True}, cfg))
            for lr in rates:
                entries.append(
                    (
                        f"{name}_lr{lr:.3g}",
                        {"preset": True, "preset_of": name, "lr": lr},
                        resolve(cfg, {"train.lr": lr}),
                    )
                )
    jobs = []
    for label, info, cfg in entries:
        est = estimate(cfg.model, cfg.data.image_size)
        info = {**info, "label": label, "params_count": int(est.params), "macs": int(est.macs)}
        low, high = _with(cfg, fc.low), _with(cfg, fc.high)
        high_key = f"{label}/high"
        if not fc.same_seed:
            if high.train.seed == low.train.seed:
                high = resolve(high, {"train.seed": high_seed(low.train.seed)})
            high_key += f"-s{high.train.seed}"
        elif high.train.seed != low.train.seed:
            high = resolve(high, {"train.seed": low.train.seed})
        jobs.append(Job(f"{label}/low", low, group=label, info={**info, "side": "low"}))
        jobs.append(Job(high_key, high, group=label, info={**info, "side": "high"}))
    return jobs


def analyse(
    rows: Sequence[Mapping[str, Any]], high_metric: str = "test_dice", n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Pair each config's low and high result and compute the agreement statistics.

    Configs with a failed run on either side are listed under ``missing`` and left out.
    """
    by: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in _best_preset_rates(rows):
        by.setdefault(r["group"], {})[r["side"]] = r
    pairs: list[dict[str, Any]] = []
    missing: list[str] = []
    for label, sides in by.items():
        lo, hi = sides.get("low"), sides.get("high")
        if not lo or not hi or lo.get("fail_reason") or hi.get("fail_reason"):
            missing.append(label)
            continue
        pairs.append(
            {
                "label": label,
                "preset": bool(lo.get("preset")),
                "params": lo.get("params_count"),
                "macs": lo.get("macs"),
                "low": float(lo["val_dice"]),
                "high": float(hi[high_metric]),
                "high_val": float(hi["val_dice"]),
                "low_degenerate": bool(lo.get("degenerate")),
                "high_degenerate": bool(hi.get("degenerate")),
                "low_seconds": lo.get("train_seconds"),
                "high_seconds": hi.get("train_seconds"),
                "sampled": lo.get("params"),
            }
        )
    low = [float(p["low"]) for p in pairs]
    high = [float(p["high"]) for p in pairs]
    stats: dict[str, Any] = {"n": len(pairs), "high_metric": high_metric, "pairs": pairs, "missing": missing}
    for name, fn in (("spearman", spearman), ("kendall", kendall)):
        value = fn(low, high) if len(pairs) >= 2 else math.nan
        stats[name] = {"value": value, "ci95": list(bootstrap_ci(low, high, fn, n_boot=n_boot, seed=seed))}
    stats["kendall_high_val"] = kendall(low, [float(p["high_val"]) for p in pairs]) if len(pairs) >= 2 else math.nan
    stats["top_k_overlap"] = {str(k): top_k_overlap(low, high, k) for k in (1, 3, 5) if k <= len(pairs)}
    stats["regret"] = {str(k): regret(low, high, k) for k in (1, 3) if k <= len(pairs)} if pairs else {}
    stats["seconds"] = {
        "low": sum(p["low_seconds"] or 0 for p in pairs),
        "high": sum(p["high_seconds"] or 0 for p in pairs),
    }
    return stats


def _best_preset_rates(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A preset run at several rates (``preset_of``) counts once per side: the rate best on validation,
    as the search's learning-rate rule picks it (ties keep the lower rate)."""
    from plsearch.train.lr import rate_rank

    out: list[Mapping[str, Any]] = []
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in rows:
        name = r.get("preset_of")
        if not name:
            out.append(r)
            continue
        if r.get("fail_reason") or r.get("val_dice") is None:
            continue
        key = (name, r["side"])
        old = best.get(key)
        if old is None or rate_rank(r.get("lr", 0), r["val_dice"]) > rate_rank(old.get("lr", 0), old["val_dice"]):
            best[key] = r
    return out + [{**r, "group": name, "label": name} for (name, _), r in best.items()]


def truncate_low(rows: Sequence[Mapping[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """The rows with each low run read after its first ``epochs`` epochs: best val Dice so far.

    That is what a run of ``epochs`` epochs reports: the same seed draws the same batches and
    augmentations, the rate is constant and early stopping looks only backwards, so the first
    ``epochs`` epochs of a longer run are that run. Costs nothing: the curves are in the rows.
    Training seconds are scaled by the epochs kept.
    """
    out = []
    for r in rows:
        curve = r.get("val_curve") or []
        if r.get("side") != "low" or not curve:
            out.append(dict(r))
            continue
        kept = curve[:epochs]
        share = len(kept) / len(curve)
        out.append(
            {
                **r,
                "val_dice": max(kept),
                "train_seconds": (r.get("train_seconds") or 0) * share,
                "epochs_run": len(kept),
            }
        )
    return out


def cheaper_lows(
    rows: Sequence[Mapping[str, Any]], high_metric: str = "test_dice", seed: int = 0
) -> list[dict[str, Any]]:
    """Kendall tau (95 % bootstrap interval), top-1 regret and cost of the low fidelity read at each
    earlier epoch of its runs (``truncate_low``): the cheapest whose lower bound clears 0.5 is the
    one to search at."""
    lengths = [len(r.get("val_curve") or []) for r in rows if r.get("side") == "low"]
    if not lengths or min(lengths) < 2:
        return []
    out = []
    for e in range(1, min(lengths) + 1):
        st = analyse(truncate_low(rows, e), high_metric, n_boot=1000, seed=seed)
        if st["n"] < 2:
            continue
        out.append(
            {
                "epochs": e,
                "kendall": st["kendall"]["value"],
                "ci95": st["kendall"]["ci95"],
                "regret_top1": st["regret"].get("1"),
                "low_seconds": st["seconds"]["low"],
            }
        )
    return out


def _f(x: Any, d: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def markdown(stats: Mapping[str, Any], low: Mapping[str, Any], high: Mapping[str, Any]) -> str:
    """The summary line, the statistics table and one row per config."""

    def ci(s: Mapping[str, Any]) -> str:
        return f"{_f(s['value'])} [{_f(s['ci95'][0])}, {_f(s['ci95'][1])}]"

    fmt = lambda d: ", ".join(f"{k}={v}" for k, v in d.items()) or "(the space's own)"  # noqa: E731
    lines = [
        (
            f"low fidelity: {fmt(low)}  \nhigh fidelity: {fmt(high)}  \n"
            + (f"reading: {stats['reading']}  \n" if stats.get("reading") else "")
            + f"{stats['n']} configs; low = best-epoch val Dice, high = {stats['high_metric']} of the high run's "
            "best-validation weights"
        ),
        "",
        "| statistic | value [95 % bootstrap interval] |",
        "|---|---|",
        f"| Spearman rho | {ci(stats['spearman'])} |",
        f"| Kendall tau | {ci(stats['kendall'])} |",
        f"| Kendall tau vs high val Dice | {_f(stats['kendall_high_val'])} |",
    ]
    lines += [f"| top-{k} overlap | {_f(v, 2)} |" for k, v in stats["top_k_overlap"].items()]
    lines += [f"| regret, best of low's top {k} | {_f(v)} Dice |" for k, v in stats["regret"].items()]
    lines += [
        (f"| training seconds, low / high | {_f(stats['seconds']['low'], 0)} / {_f(stats['seconds']['high'], 0)} |"),
        "",
        "| config | params | MACs | low val Dice | high Dice | high val Dice | degenerate (low/high) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in sorted(stats["pairs"], key=lambda p: -p["high"]):
        lines.append(
            f"| {p['label']}{' (preset)' if p['preset'] else ''} | {p['params']:,} | {p['macs']:,} | "
            f"{_f(p['low'])} | {_f(p['high'])} | {_f(p['high_val'])} | "
            f"{'yes' if p['low_degenerate'] else 'no'}/{'yes' if p['high_degenerate'] else 'no'} |"
        )
    if stats["missing"]:
        lines.append(f"\nnot finished or failed: {', '.join(stats['missing'])}")
    return "\n".join(lines) + "\n"


def _cheaper_md(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    lines = [
        "",
        "Cheaper low fidelities, read from the low runs' curves (the first E epochs of a run are an E-epoch run):",
        "",
        "| low epochs | Kendall tau [95 % interval] | regret, low's top 1 | low training seconds |",
        "|---:|---|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['epochs']} | {_f(r['kendall'])} [{_f(lo)}, {_f(hi)}] | {_f(r['regret_top1'])} "
            f"| {r['low_seconds']:.0f} |"
        )
    ok = [r for r in rows if r["ci95"][0] >= 0.5]
    lines.append("")
    lines.append(
        f"Cheapest low fidelity whose lower bound on tau is at least 0.5: {ok[0]['epochs']} epochs."
        if ok
        else "No low fidelity here has a lower bound on tau of at least 0.5."
    )
    return "\n".join(lines) + "\n"


def plot(stats: Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """Scatter of low vs high Dice, every point labelled, presets as stars."""
    import matplotlib

    from plsearch.plots.study import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for p in stats["pairs"]:
        ax.scatter(
            p["low"],
            p["high"],
            marker="*" if p["preset"] else "o",
            s=140 if p["preset"] else 36,
            color="tab:red" if p["preset"] else "tab:blue",
            edgecolor="black",
            linewidth=0.5,
            zorder=3,
        )
        ax.annotate(p["label"], (p["low"], p["high"]), xytext=(3, 3), textcoords="offset points", fontsize=7)
    k, r = stats["kendall"], stats["spearman"]
    ax.set_xlabel("low fidelity: best-epoch val Dice")
    ax.set_ylabel(f"high fidelity: {stats['high_metric'].replace('_', ' ')}")
    ax.set_title(
        (title + "\n" if title else "") + f"n={stats['n']}  tau {_f(k['value'], 2)} [{_f(k['ci95'][0], 2)}, "
        f"{_f(k['ci95'][1], 2)}]  rho {_f(r['value'], 2)} [{_f(r['ci95'][0], 2)}, {_f(r['ci95'][1], 2)}]",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def write_outputs(
    rows: Sequence[Mapping[str, Any]], out_dir: str | Path, fc: FidelityConfig, title: str = ""
) -> dict[str, Any]:
    """Write ``fidelity.json``, ``fidelity.md`` and ``fidelity.png`` into ``out_dir``; returns the stats."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = analyse(rows, fc.high_metric, seed=fc.seed)
    stats["reading"] = reading(fc, rows)  # independent seeds, or a same-run upper bound
    stats["cheaper_lows"] = cheaper_lows(rows, fc.high_metric, seed=fc.seed)
    doc = {
        "low": dict(fc.low),
        "high": dict(fc.high),
        "configs": fc.configs,
        "seed": fc.seed,
        "same_seed": fc.same_seed,
        **stats,
    }
    (out / "fidelity.json").write_text(json.dumps(doc, indent=1, default=str))
    (out / "fidelity.md").write_text(markdown(stats, fc.low, fc.high) + _cheaper_md(stats["cheaper_lows"]))
    if stats["pairs"]:
        plot(stats, out / "fidelity.png", f"{title}: {stats['reading']}" if title else stats["reading"])
    return stats
