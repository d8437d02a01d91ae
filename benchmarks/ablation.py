"""The paper's ablation (its Table 2) rerun with seeds on the test split: do IPL and EPL pay?

Eight configs at PL-Net-dagger width (``plnet-small``, Ocs 0.5): n=1; n=2 stacked ("without IPL":
one pass of 2 convs); n=2 IPL; n=3 IPL; each with one stage and with two (EPL). Every run is a
``plsearch.studies.runs`` job (resumable, ``--workers``), evaluated on the data set's **test** split, with
validation and test Dice after every epoch, so "equal compute" needs no extra runs: each run is
also read at shared points of training compute (forward MACs x 3 x images seen), taking the test
Dice of the best-validation epoch within that budget.

    python benchmarks/ablation.py --data ../shared/data/dsb2018 --seeds 2            # CPU fidelity (~25 CPU-min)
    python benchmarks/ablation.py --data ../shared/data/ddti --fidelity cpu-long      # 240 steps, 3 seeds (~1.5 CPU-h)
    python benchmarks/ablation.py --data ../shared/data/dsb2018 --fidelity paper --seeds 3 --device cuda --plan
    python benchmarks/ablation.py --data ../shared/data/dsb2018 --report-only        # tables and plot from the rows

Finished runs are kept as one JSON line each in ``docs/bench/ablation_<data>_<fidelity>.jsonl``
(committed): a rerun, in this or a later session, skips every key already there and appends the rest.
Writes ``<table>.md`` and ``<table>.png`` beside it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plsearch.config.schema import RunConfig  # noqa: E402
from plsearch.studies.runs import Job, export_jsonl, read_jsonl, run_jobs  # noqa: E402

VARIANTS = [("n1", 1, "progressive"), ("n2_stacked", 2, "stacked"), ("n2_ipl", 2, "progressive"),
            ("n3_ipl", 3, "progressive")]
PAPER_PARAMS_M = {"n1": 10.33, "n2_stacked": 15.03, "n2_ipl": 15.03, "n3_ipl": 19.73}  # Table 2, Ocs 1.0
FIDELITIES: dict[str, dict[str, Any]] = {
    # CPU: 64 px, BiO-Net's resolution plan (same parameters, a third of the MACs: buys 3x the steps),
    # batch 8, 6 epochs of 20 steps, Adam 1e-3, one thread per process.
    "cpu": {"data.image_size": 64, "model.plan": "bionet", "train.batch_size": 8, "train.epochs": 6,
            "train.max_steps_per_epoch": 20, "train.lr": 1e-3, "train.patience": 0, "train.augment": True,
            "train.num_threads": 1, "train.eval_batch_size": 32},
    # CPU, twice as long: 12 epochs of 20 steps (240 steps), otherwise "cpu". 3 seeds x 8 configs fit about
    # 1.5-2 CPU-hours per data set; its first 6 epochs are the "cpu" run (constant learning rate), so one
    # run says how the ranking moves between 120 and 240 steps.
    "cpu-long": {"data.image_size": 64, "model.plan": "bionet", "train.batch_size": 8, "train.epochs": 12,
                 "train.max_steps_per_epoch": 20, "train.lr": 1e-3, "train.patience": 0, "train.augment": True,
                 "train.num_threads": 1, "train.eval_batch_size": 32},
    # The paper's protocol (224 px, Table 1's plan, Adam 1e-4, batch 16, up to 200 epochs, patience 20): a GPU.
    "paper": {"data.image_size": 224, "model.plan": "table1", "train.batch_size": 16, "train.epochs": 200,
              "train.max_steps_per_epoch": 0, "train.lr": 1e-4, "train.patience": 20, "train.augment": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "dsb2018"))
    p.add_argument("--fidelity", choices=sorted(FIDELITIES), default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a fidelity value")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config [3]")
    p.add_argument("--stages", default="1,2", help="EPL stages to run [1,2]")
    p.add_argument("--out", help="runs folder [results/ablation_<data>_<fidelity>]")
    p.add_argument("--table", help="committed rows [docs/bench/ablation_<data>_<fidelity>.jsonl]")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", help="train.device for every run")
    p.add_argument("--devices", help="comma-separated devices, one worker each")
    p.add_argument("--plan", action="store_true", help="print the predicted time and exit")
    p.add_argument("--tflops", type=float, help="assumed sustained TFLOP/s for --plan [0.03 on CPU, 100 on CUDA]")
    p.add_argument("--report-only", action="store_true", help="tables and plot from the committed rows")
    return p.parse_args(argv)


def config_digest(cfg: RunConfig) -> str:
    """Which config a committed row was run with (a rerun skips rows whose digest matches): the search's
    reference key (``plsearch.search.references.config_key``, which leaves out fields plsearch gained
    later while they sit at the default that reproduces older runs), shortened."""
    from plsearch.search.references import config_key

    return config_key(cfg)[:10]


def make_jobs(args: argparse.Namespace) -> list[Job]:
    from plsearch.config.gate import parse_sets, resolve
    from plsearch.config.presets import preset_config
    from plsearch.search.objective import load_data

    over = {**FIDELITIES[args.fidelity], **parse_sets(args.set), "data.root": str(Path(args.data).resolve())}
    if args.device:
        over["train.device"] = args.device
    base = resolve(RunConfig(), {k: v for k, v in over.items() if not k.startswith("model.")})
    channels = None if args.plan else load_data(base.data)["train"].channels
    jobs = []
    for seed in range(args.seeds):  # seed-major: an interrupted run leaves every config with equal seeds
        for stages in [int(s) for s in args.stages.split(",")]:
            for name, steps, ipl in VARIANTS:
                model = preset_config("plnet-small", steps=steps, ipl=ipl, stages=stages,
                                      **{k.split(".", 1)[1]: v for k, v in over.items() if k.startswith("model.")})
                cfg = RunConfig(model=model, data=base.data, train=base.train)
                if channels is not None:
                    cfg = resolve(cfg, {"train.seed": seed}, data=channels)
                else:
                    cfg = resolve(cfg, {"train.seed": seed})
                label = f"{name}_s{stages}"
                digest = config_digest(cfg)
                jobs.append(Job(f"{label}/seed_{seed}", cfg, group=label, test_curve=True,
                                info={"variant": name, "stages": stages, "seed": seed, "digest": digest}))
    return jobs


def _ms(v: list[float]) -> tuple[float, float]:
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return m, sd


def at_budget(row: dict[str, Any], budget: float) -> float | None:
    """Test Dice of the best-validation epoch among those finished within ``budget`` training FLOPs."""
    per_step = row["batch_size"] * 6.0 * row["macs"]
    seen, epochs = 0.0, 0
    for steps in row["steps"]:
        seen += steps * per_step
        if seen > budget * (1 + 1e-9):
            break
        epochs += 1
    return at_epochs(row, epochs)


def at_epochs(row: dict[str, Any], epochs: int) -> float | None:
    """Test Dice of the best-validation epoch among the first ``epochs`` (a run cut there: constant rate)."""
    pairs = list(zip(row["val_curve"], row["test_curve"]))[:epochs]
    return max(pairs, key=lambda p: p[0])[1] if pairs else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per config: test/val Dice mean and sd at equal epochs, and test Dice at shared compute budgets."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if not r.get("fail_reason") and r.get("test_curve"):
            groups.setdefault(r["group"], []).append(r)
    totals = {g: _ms([sum(s * rr["batch_size"] * 6.0 * rr["macs"] for s in rr["steps"]) for rr in rs])[0]
              for g, rs in groups.items()}
    shared = min(totals.values()) if totals else 0.0
    budgets = [shared / 2, shared]
    half = min((len(r["val_curve"]) for rs in groups.values() for r in rs), default=0) // 2
    table = []
    for g, rs in groups.items():
        test_m, test_sd = _ms([r["test_dice"] for r in rs])
        val_m, val_sd = _ms([r["val_dice"] for r in rs])
        at = [[x for x in (at_budget(r, b) for r in rs) if x is not None] for b in budgets]
        table.append({"config": g, "variant": rs[0]["variant"], "stages": rs[0]["stages"], "seeds": len(rs),
                      "params": rs[0]["params"], "macs": rs[0]["macs"], "test_dice": test_m, "test_sd": test_sd,
                      "val_dice": val_m, "val_sd": val_sd, "train_pflop": totals[g] / 1e15,
                      "degenerate": sum(bool(r.get("degenerate")) for r in rs),
                      "equal_compute": [(_ms(a) if a else (float("nan"), float("nan"))) for a in at],
                      "half": _ms([x for x in (at_epochs(r, half) for r in rs) if x is not None]) if half else
                      (float("nan"), float("nan")),
                      "seconds": sum(r.get("train_seconds", 0) for r in rs)})
    order = {f"{v}_s{s}": i for i, (s, (v, _, _)) in enumerate((s, v) for s in (1, 2) for v in VARIANTS)}
    table.sort(key=lambda t: order.get(t["config"], 99))
    return {"rows": table, "budgets_pflop": [b / 1e15 for b in budgets], "half_epochs": half,
            "half_agreement": _agreement(table)}


def _agreement(table: list[dict[str, Any]]) -> dict[str, float] | None:
    """How the configs' ranking (mean test Dice) at half the epochs predicts it at the end: Kendall's tau,
    Spearman's rho, and whether the best config is the same."""
    pts = [(t["half"][0], t["test_dice"]) for t in table if not math.isnan(t["half"][0])]
    if len(pts) < 3:
        return None
    from plsearch.studies.rankstats import kendall, spearman

    lo, hi = [p[0] for p in pts], [p[1] for p in pts]
    return {"tau": kendall(lo, hi), "rho": spearman(lo, hi), "n": len(pts),
            "same_best": float(max(range(len(pts)), key=lo.__getitem__) == max(range(len(pts)), key=hi.__getitem__))}


def markdown(summary: dict[str, Any], fidelity: dict[str, Any], data: str) -> str:
    f = lambda m, s: "-" if math.isnan(m) else (f"{m:.3f}" + ("" if math.isnan(s) else f" ± {s:.3f}"))  # noqa: E731
    b = summary["budgets_pflop"]
    h = summary.get("half_epochs", 0)
    lines = [f"Ablation (paper Table 2) on {data}, PL-Net† width; fidelity: "
             + ", ".join(f"{k}={v}" for k, v in fidelity.items() if k != "data.root"), "",
             (f"| config | stages | seeds | params | paper params (Ocs 1.0) | MACs/img | test Dice, equal epochs | "
              f"val Dice | test Dice at {h} epochs | test Dice at {b[0] * 1e3:.3g} TFLOP | "
              f"test Dice at {b[1] * 1e3:.3g} TFLOP | train TFLOP | degenerate |"),
             "|---|---:|---:|---:|---:|---:|---|---|---|---|---|---:|---:|"]
    for t in summary["rows"]:
        (m0, s0), (m1, s1) = t["equal_compute"]
        lines.append(f"| {t['variant']} | {t['stages']} | {t['seeds']} | {t['params'] / 1e6:.2f} M | "
                     f"{PAPER_PARAMS_M[t['variant']]:.2f} M | {t['macs'] / 1e9:.3f} G | "
                     f"{f(t['test_dice'], t['test_sd'])} | {f(t['val_dice'], t['val_sd'])} | {f(*t['half'])} | "
                     f"{f(m0, s0)} | "
                     f"{f(m1, s1)} | {t['train_pflop'] * 1e3:.3g} | "
                     f"{t['degenerate']} |")
    lines += ["", ("mean ± sd over seeds; test Dice of each run's best-validation weights; 'at X TFLOP': the test "
              "Dice of the best-validation epoch among those finished within X TFLOP of training (6 x forward MACs per "
              "image seen), X = the cheapest config's whole run and half of it; 'at E epochs': the test Dice of the "
              "best-validation epoch among the first E (the same runs cut there; the rate is constant).")]
    a = summary.get("half_agreement")
    if a:
        lines.append(f"Ranking of the {a['n']} configs by mean test Dice at {h} epochs against the end: Kendall tau "
                     f"{a['tau']:.2f}, Spearman rho {a['rho']:.2f}; the best config is "
                     f"{'the same' if a['same_best'] else 'not the same'}.")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plsearch.plots.study import save_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = {v: c for (v, _, _), c in zip(VARIANTS, ["tab:gray", "tab:orange", "tab:blue", "tab:purple"])}
    for t in summary["rows"]:
        x = t["macs"] / 1e9
        a.errorbar(x, t["test_dice"], yerr=0 if math.isnan(t["test_sd"]) else t["test_sd"], capsize=3,
                   marker="o" if t["stages"] == 1 else "s", color=colors[t["variant"]], linestyle="none",
                   label=f"{t['variant']}, {t['stages']} stage{'s' if t['stages'] > 1 else ''}")
    a.set_xscale("log")
    a.set_xlabel("GMACs per image (forward)")
    a.set_ylabel("test Dice (mean ± sd over seeds)")
    a.set_title("equal epochs", fontsize=10)
    a.legend(fontsize=7, loc="lower left")
    for t in summary["rows"]:
        rs = [r for r in rows if r["group"] == t["config"] and r.get("test_curve")]
        n = min(len(r["steps"]) for r in rs)
        xs, ys = [], []
        for e in range(n):
            spent = [sum(r["steps"][: e + 1]) * r["batch_size"] * 6.0 * r["macs"] / 1e12 for r in rs]
            xs.append(sum(spent) / len(spent))
            ys.append(sum(r["test_curve"][e] for r in rs) / len(rs))
        b.plot(xs, ys, marker="o" if t["stages"] == 1 else "s", markersize=3, color=colors[t["variant"]],
               linestyle="-" if t["stages"] == 1 else "--", label=t["config"])
    for x in summary["budgets_pflop"]:
        b.axvline(x * 1e3, color="black", alpha=0.3, linewidth=0.8)
    b.set_xscale("log")
    b.set_xlabel("training compute, TFLOP (6 x forward MACs x images seen)")
    b.set_ylabel("test Dice after each epoch (mean over seeds)")
    b.set_title("equal compute: read along the vertical lines", fontsize=10)
    b.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = Path(args.data).name
    table = Path(args.table or REPO / "docs" / "bench" / f"ablation_{name}_{args.fidelity}.jsonl")
    fidelity = {**FIDELITIES[args.fidelity], **dict(s.split("=", 1) for s in args.set)}
    if args.plan:
        import torch

        from plsearch.studies.runplan import plan_lines

        cuda = (args.device or "").startswith("cuda") or (args.device is None and torch.cuda.is_available())
        tflops = args.tflops or (100.0 if cuda else 0.03)
        for line in plan_lines(make_jobs(args), tflops * 1e12, "cuda" if cuda else "cpu"):
            print(line)
        return 0
    done = {r["key"]: r for r in read_jsonl(table)}
    if not args.report_only:
        from plsearch.cli.runs import run_line
        from plsearch.graph.wiring import estimate

        jobs = make_jobs(args)
        todo = [j for j in jobs if done.get(j.key, {}).get("digest") != j.info["digest"]]
        print(f"{len(jobs)} runs, {len(jobs) - len(todo)} already in {table}", flush=True)

        def keep(row: dict) -> None:
            cfg = RunConfig.from_dict(row["config"])
            est = estimate(cfg.model, cfg.data.image_size)
            done[row["key"]] = {**{k: v for k, v in row.items() if k != "checkpoint"},  # a path on this machine
                                "params": int(est.params), "macs": int(est.macs), "batch_size": cfg.train.batch_size}

        def on_done(row: dict) -> None:
            print(run_line(row), flush=True)
            keep(row)
            export_jsonl(list(done.values()), table)

        out = Path(args.out or REPO / "results" / f"ablation_{name}_{args.fidelity}")
        devices = [d.strip() for d in args.devices.split(",")] if args.devices else []
        for row in run_jobs(todo, out, f"ablation_{name}_{args.fidelity}", workers=args.workers, devices=devices,
                            on_done=on_done):  # the workers' rows too
            keep(row)
        export_jsonl(list(done.values()), table)
    rows = list(done.values())
    summary = summarize(rows)
    title = f"PL-Net† ablation on {name} ({args.fidelity} fidelity), {len(rows)} runs"
    table.with_suffix(".md").write_text(markdown(summary, fidelity, name))
    if summary["rows"]:
        plot(rows, summary, table.with_suffix(".png"), title)
    print(table.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
