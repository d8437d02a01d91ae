"""What a search trial costs: train-step time, op count and achieved FLOP/s, before and after.

For the four presets (at the search's scaled widths) and a seeded sample of a space's configs, at
each fidelity: ms per train step (forward, Dice over every stage, backward, Adam) for each code
path, timed round-robin in one process (so the machine's load hits them alike), ops per step
(torch.profiler), MACs, achieved GFLOP/s (train step = 3 x forward MACs) and the estimated
training seconds of one trial (steps per trial x step time). Paths, one change at a time:

- ``before``: the reference executor (op records interpreted each forward), oneDNN for every conv,
  Adam's per-tensor loop: the code as it was;
- ``plan``: the compiled straight-line forward with functional BatchNorm (``plsearch.nn.plan``);
- ``native``: + ATen's native conv for tiny training convs (``blocks.base.native_conv_pays``);
- ``native-up``: + the same for BiO-Net's 3x3 transposed up unit (``blocks.base.fast_conv_transpose``);
- ``fused``: + torch's fused Adam over the per-tensor list;
- ``after``: + ``FlatAdam`` (one flat buffer, one fused kernel; ``train.make_optimizer``): the default now;
- ``compiled`` (only with ``--compile``): ``after`` through ``torch.compile`` (inductor), the
  ``train.compile`` option; its first two steps (compiling) are reported apart as ``compile_s``.

    python benchmarks/trial_cost.py                       # all fidelities; resumable; ~1 h on a busy 2-core CPU
    python benchmarks/trial_cost.py --fidelities default --sample 2 --rounds 2   # a quick look
    python benchmarks/trial_cost.py --fidelities default --presets plnet-small,unet --sample 0 --compile \
        --out results/bench/trial_cost_compile.json --docs docs/speed/compile   # + torch.compile (minutes)

Writes ``results/bench/trial_cost.json`` (every figure), ``docs/speed/trial_cost.md`` (the table) and
``docs/speed/trial_cost.png`` (ms per step against MACs per step; a line for "time proportional to
MACs" through U-Net). Use ``--threads 1 --clock cpu`` (the defaults) on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

import plsearch.nn.blocks.base as blocks_base
import plsearch.nn.blocks.up as blocks_up
from plsearch.config.presets import preset_config
from plsearch.config.schema import TrainConfig
from plsearch.graph.wiring import estimate
from plsearch.nn.model import PLNet
from plsearch.train import fit as train_mod
from plsearch.train.losses import deep_supervision_loss

ROOT = Path(__file__).resolve().parents[1]
NATIVE_MACS = blocks_base.NATIVE_CONV_MAX_MACS
PRESETS = ("plnet", "plnet-small", "bionet", "unet")
# fidelity: image size, batch, base width, train steps per trial (epochs x steps per epoch)
FIDELITIES = {
    "default": (32, 8, 4, 80),  # search_spaces/ipl_epl.yaml
    "dsb2018": (64, 8, 4, 72),  # search_spaces/ipl_epl_dsb2018.yaml
    "96px-b16": (96, 16, 4, 80),
}
VARIANTS = {  # name: (executor, native conv rule on, native up unit, fused Adam, flat Adam)
    "before": ("reference", False, False, False, False),
    "plan": ("compiled", False, False, False, False),
    "native": ("compiled", True, False, False, False),
    "native-up": ("compiled", True, True, False, False),
    "fused": ("compiled", True, True, True, False),
    "after": ("compiled", True, True, True, True),
}
COMPILED = ("compiled", True, True, True, True)  # ``after`` through torch.compile (``--compile``)
NATIVE_UP = blocks_up.fast_conv_transpose


def _onednn_up(x, weight, bias, stride, padding, output_padding, training):
    """The up unit's transposed conv as before ``fast_conv_transpose`` (oneDNN on the CPU)."""
    return torch.nn.functional.conv_transpose2d(x, weight, bias, stride=stride, padding=padding,
                                                output_padding=output_padding)


def configs(space_path: Path, fid: tuple, sample: int, seed: int,
            presets: tuple[str, ...] = PRESETS) -> list[tuple[str, dict]]:
    """(label, ModelConfig dict) for the presets at the fidelity's scaled width, then ``sample``
    configs of the space (seeded; only those valid and within its MACs/params budget)."""
    import optuna

    from plsearch.config.schema import ConfigError
    from plsearch.search.space import load_space

    size, _, width, _ = fid
    out = []
    for name in presets:
        base = preset_config(name).base_width
        out.append((name, preset_config(name, base_width=max(1, round(base * width / 32))).to_dict()))
    space = load_space(space_path)
    limits = dict(space.constraints)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    tries = 0
    while len(out) < len(presets) + sample and tries < 200:
        tries += 1
        params = space.sample(study.ask())
        params.update({"model.base_width": width, "data.image_size": size})
        try:
            cfg = space.build(params, data=3).model
        except (ConfigError, ValueError):
            continue
        est = estimate(cfg, size)
        if est.macs > limits.get("macs", math.inf) * (size / 32) ** 2 or est.params > limits.get("params", math.inf):
            continue
        out.append((f"space#{len(out) - len(presets)}", cfg.to_dict()))
    return out


def _clock(kind: str):
    return time.process_time if kind == "cpu" else time.perf_counter


class Runner:
    """One model + optimizer per code path, stepped on a fixed batch."""

    def __init__(self, cfg: dict, size: int, batch: int, variant: str) -> None:
        executor, self.native, self.native_up, fused, flat = COMPILED if variant == "compiled" else VARIANTS[variant]
        torch.manual_seed(0)
        self.model = PLNet.from_config(cfg).train().set_executor(executor)
        self.net = self.model
        if variant == "compiled":
            from plsearch.nn.speed import compile_model

            self.net = compile_model(self.model)
        train_mod.FUSED_ADAM, train_mod.FLAT_ADAM = fused, flat
        self.opt = train_mod.make_optimizer(self.model, TrainConfig(lr=1e-3))
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(batch, cfg["in_channels"], size, size, generator=g)
        self.y = torch.rand(batch, size, size, generator=g) > 0.7

    def step(self) -> None:
        blocks_base.NATIVE_CONV_MAX_MACS = NATIVE_MACS if self.native else 0
        blocks_up.fast_conv_transpose = NATIVE_UP if self.native_up else _onednn_up
        loss = deep_supervision_loss(self.net(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def ops(self) -> int:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            self.step()
        return sum(e.count for e in prof.key_averages())


def measure(cfg: dict, fid: tuple, rounds: int, steps: int, clock, compiled: bool = False) -> dict:
    size, batch, _, _ = fid
    names = list(VARIANTS) + (["compiled"] if compiled else [])
    runners = {v: Runner(cfg, size, batch, v) for v in names}
    times: dict[str, list[float]] = {v: [] for v in names}
    compile_s = None
    for v, r in runners.items():
        t0 = time.perf_counter()
        r.step()  # warm-up: plans, oneDNN primitives, optimizer state (and compiling)
        if v == "compiled":
            r.step()  # the backward graph compiles on the first backward; a second step settles it
            compile_s = time.perf_counter() - t0
    for _ in range(rounds):
        for v, r in runners.items():
            t0 = clock()
            for _ in range(steps):
                r.step()
            times[v].append((clock() - t0) / steps)
    row = {"ms": {v: 1000 * sorted(t)[len(t) // 2] for v, t in times.items()},
           "ms_min": {v: 1000 * min(t) for v, t in times.items()},
           "ops": {v: runners[v].ops() for v in ("before", "after")},
           "params_tensors": len(list(runners["after"].model.parameters()))}
    if compile_s is not None:
        row["compile_s"] = compile_s
    return row


def table(rows: list[dict], peak: float) -> str:
    compiled = any("compiled" in r["ms"] for r in rows)
    lines = [f"matmul peak (1 thread, wall clock, same run): {peak / 1e9:.1f} GFLOP/s; ms/step: CPU time, median "
             "of the rounds\n",
             "| fidelity | config | MACs/img | ms/step before | plan | +native conv | +native up "
             "| +fused Adam "
             "| **after** (+FlatAdam) | speed-up | ops/step before -> after | GFLOP/s before -> after "
             "| train s/trial before -> after |" + (" compiled (compile s) |" if compiled else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if compiled else "")]
    for r in rows:
        ms = r["ms"]
        flop = 2 * 3 * r["macs"] * r["batch"]
        lines.append(
            f"| {r['fidelity']} | {r['label']} | {r['macs'] / 1e6:.1f} M | {ms['before']:.0f} | {ms['plan']:.0f} | "
            f"{ms['native']:.0f} | {_ms(ms, 'native-up')} | {_ms(ms, 'fused')} | **{ms['after']:.0f}** | "
            f"{ms['before'] / ms['after']:.2f}x | "
            f"{r['ops']['before']:,} -> {r['ops']['after']:,} | {flop / ms['before'] / 1e6:.1f} -> "
            f"{flop / ms['after'] / 1e6:.1f} | {r['steps'] * ms['before'] / 1e3:.1f} -> "
            f"{r['steps'] * ms['after'] / 1e3:.1f} |"
            + (f" {_ms(ms, 'compiled')} ({r.get('compile_s', float('nan')):.0f} s) |" if compiled else ""))
    lines.append("")
    for fid in dict.fromkeys(r["fidelity"] for r in rows):  # the target: PL-Net-dagger no slower than U-Net
        by = {r["label"]: r["ms"] for r in rows if r["fidelity"] == fid}
        if "plnet-small" in by and "unet" in by:
            small, unet = by["plnet-small"], by["unet"]
            lines.append(f"- {fid}: plnet-small / unet step time, before {small['before'] / unet['before']:.2f}x, "
                         f"after {small['after'] / unet['after']:.2f}x"
                         + (f", compiled {small['compiled'] / unet['compiled']:.2f}x"
                            if "compiled" in small and "compiled" in unet else ""))
    return "\n".join(lines) + "\n"


def _ms(ms: dict, key: str) -> str:
    return f"{ms[key]:.0f}" if key in ms else "-"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fids = list(dict.fromkeys(r["fidelity"] for r in rows))
    fig, axes = plt.subplots(1, len(fids), figsize=(5 * len(fids), 4.2), squeeze=False)
    for ax, fid in zip(axes[0], fids):
        sub = [r for r in rows if r["fidelity"] == fid]
        for variant, style in (("before", dict(facecolors="none", edgecolors="tab:red")),
                               ("after", dict(color="tab:blue")),
                               ("compiled", dict(marker="x", color="tab:green"))):
            have = [r for r in sub if variant in r["ms"]]  # "compiled" only with --compile
            if not have:
                continue
            xs = [3 * r["macs"] * r["batch"] for r in have]
            ax.scatter(xs, [r["ms"][variant] for r in have], label=variant, **style)
            for r, x in zip(have, xs):
                if variant == "after" and not r["label"].startswith("space"):
                    ax.annotate(r["label"], (x, r["ms"][variant]), fontsize=7)
        unet = next((r for r in sub if r["label"] == "unet"), None)
        if unet:
            x0 = 3 * unet["macs"] * unet["batch"]
            xs = sorted(3 * r["macs"] * r["batch"] for r in sub)
            ax.plot(xs, [unet["ms"]["after"] * x / x0 for x in xs], "k--", lw=0.8, label="time ∝ MACs (U-Net, after)")
        ax.set(xscale="log", yscale="log", xlabel="MACs per train step", ylabel="ms per train step", title=fid)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no colliding minor labels
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fidelities", default=",".join(FIDELITIES))
    p.add_argument("--space", type=Path, default=ROOT / "search_spaces/ipl_epl.yaml")
    p.add_argument("--sample", type=int, default=4, help="configs sampled from the space per fidelity")
    p.add_argument("--big-sample", type=int, default=0, help="... at 96 px (slow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets to time")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2, help="steps per timed round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--compile", action="store_true",
                   help="also time the default path through torch.compile (minutes of compiling per config)")
    p.add_argument("--out", type=Path, default=ROOT / "results/bench/trial_cost.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs/speed")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from plsearch.nn.speed import matmul_peak_flops

    done = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    have = {(r["fidelity"], r["label"]) for r in done["rows"]}
    done["peak"] = max(done.get("peak", 0.0), matmul_peak_flops("cpu", n=1024))
    clock = _clock(args.clock)
    for fid in args.fidelities.split(","):
        spec = FIDELITIES[fid]
        n = args.big_sample if fid.startswith("96") else args.sample
        for label, cfg in configs(args.space, spec, n, args.seed, tuple(filter(None, args.presets.split(",")))):
            if (fid, label) in have:
                continue
            row = measure(cfg, spec, args.rounds, args.steps, clock, compiled=args.compile)
            macs = estimate(PLNet.from_config(cfg).config, spec[0]).macs
            row.update(fidelity=fid, label=label, config=cfg, macs=macs,
                       batch=spec[1], steps=spec[3], threads=args.threads, clock=args.clock,
                       load=os.getloadavg()[0])
            done["rows"].append(row)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(done, indent=1))
            print(f"{fid:9s} {label:12s} " + "  ".join(f"{v} {ms:.0f}" for v, ms in row["ms"].items())
                  + f"  ms/step; ops {row['ops']['before']} -> {row['ops']['after']}", flush=True)
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "trial_cost.md").write_text(table(done["rows"], done["peak"]))
    plot(done["rows"], args.docs / "trial_cost.png")


if __name__ == "__main__":
    main()
