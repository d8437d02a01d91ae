"""The GPU check: everything a short device lease must measure, in one command of at most 4 minutes.

    bash benchmarks/gpu_check.sh --prepare     # here (registry and ../shared at hand): fill .gpu_carry/
    bash benchmarks/gpu_check.sh --plan        # what it would run, and the predicted minutes
    bash benchmarks/gpu_check.sh               # on the CUDA machine (README: "GPU check")

Parts run in priority order, each as a subprocess with a time cap, so a run cut off early still
reports the most important ones; ``summary.json`` and ``summary.md`` are rewritten after each part.
Exit 0 when every part passed, 1 when any failed or was skipped for time, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_carry  # noqa: E402
from gpu_carry import CARRY, REPO, CarryError  # noqa: E402
from gpu_parts import (  # noqa: E402
    PROTOCOL_EPOCHS,
    RUNNERS,
    SEARCH_S,
    SITE,
    TRAIN_EPOCHS,
    P,
    env_for_parts,
    gpu_test_files,
    search_space,
    use_profile,
)

BUDGET_S = 240
SETUP_S = 10
# name, cap in seconds (None: what is left, at most SEARCH_S + 25), what it runs
PARTS = (
    ("tests", 60, "pytest -m gpu: the gpu-marked tests (bf16 + channels-last fit and evaluation, 3D "
                  "channels_last_3d, compiled train step, augmentation on the GPU)"),
    ("speed", 30, "PL-Net, PL-Net\u2020, MONAI BasicUNet at 224x224, batch 16, bf16 + channels_last, train step and "
                  "forward: images/s, fraction of the measured bf16 matmul peak, peak memory"),
    ("train", 40, f"PL-Net on the carried dsb2018 at 224 px, {TRAIN_EPOCHS} epochs, batch 16, Adam 1e-4, bf16: "
                  f"seconds per epoch and the predicted {PROTOCOL_EPOCHS}-epoch protocol"),
    ("search", None, f"2 workers sharing cuda:0 (memory cap 0.475 each) on the dsb2018 space for up to "
                     f"{SEARCH_S // 60} min: trials per minute, GPU utilisation"),
)


def search_cap(budget: int, left: float | None = None) -> float:
    """The search gets what the budget leaves (planned: after every other part used its whole cap)."""
    if left is None:
        left = budget - SETUP_S - sum(cap for _, cap, _ in PARTS if cap)
    return min(SEARCH_S + 25, left)


def plan_text(budget: int = BUDGET_S) -> str:
    manifest = json.loads((CARRY / "MANIFEST.json").read_text()) if (CARRY / "MANIFEST.json").is_file() else None
    lines = [f"GPU check plan: parts in priority order, each capped; at most {budget / 60:.1f} min in all "
             "(plus 1-2 min for the device machine to start)"]
    lines.append(f"  0. setup   install the carried wheels this machine lacks, check imports   ~{SETUP_S / 60:.1f} min")
    for i, (name, cap, what) in enumerate(PARTS, 1):
        if cap is None:
            cap = search_cap(budget)
            what += f" [{search_space().relative_to(REPO)}]"
        if name == "tests":
            what += f" [{', '.join(gpu_test_files())}]"
        lines.append(f"  {i}. {name:<7} {what}   <= {cap / 60:.1f} min")
    if manifest:
        lines.append(f"carry: .gpu_carry ({manifest['carry_mib']:.1f} MiB: {len(manifest.get('wheels', []))} wheels, "
                     f"{manifest['data']['images']} dsb2018 images at {manifest['data']['size']} px) + working tree "
                     f"{manifest['tree_mib']:.1f} MiB = {manifest['total_mib']:.1f} of {gpu_carry.LIMIT_MIB:g} MiB")
    else:
        lines.append("carry: not prepared yet; run bash benchmarks/gpu_check.sh --prepare here first")
    lines.append(f"predicted: {budget / 60:.1f} min at most; device tool timeout_s {budget + 60} leaves a rerun "
                 "inside a 15-minute lease")
    return "\n".join(lines)




def setup(out: Path) -> dict:
    """Install the carried wheels this machine lacks; check that plsearch and its peers import."""
    import subprocess

    info: dict = {"carry": CARRY.is_dir()}
    if (CARRY / "wheels").is_dir():
        info.update(gpu_carry.install_missing(CARRY, SITE))
    code = ("import json, platform, torch, plsearch, optuna, fvcore, torchinfo, nibabel, einops, tqdm\n"
            "try:\n    import monai; m = monai.__version__\nexcept Exception as e:\n    m = repr(e)\n"
            "gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU: ' + platform.machine()\n"
            "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'gpu': gpu, "
            "'optuna': optuna.__version__, 'monai': m}))")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_for_parts(), cwd=REPO)
    (out / "setup.log").write_text(got.stdout + got.stderr)
    info["ok"] = got.returncode == 0
    if info["ok"]:
        info["versions"] = json.loads(got.stdout.strip().splitlines()[-1])
    else:
        info["error"] = (got.stderr.strip().splitlines() or ["import failed"])[-1]
    return info


def write_summary(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))


def _f(x, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def summary_markdown(s: dict) -> str:
    v = s.get("setup", {}).get("versions", {})
    lines = [f"# GPU check, {s['started']}", "",
             f"{v.get('gpu', '?')}, torch {v.get('torch', '?')} (CUDA {v.get('cuda', '?')}); "
             f"exit {s.get('exit', '-')}; "
             f"{s.get('seconds', 0):.0f} s of a {s['budget_s']} s budget.", "",
             "| part | status | seconds | result |", "|---|---|---:|---|"]
    for name, _, _ in PARTS:
        p = s["parts"].get(name)
        if p is None:
            lines.append(f"| {name} | not reached | | |")
            continue
        status = "ok" if p.get("ok") else ("cut at its cap" if p.get("exit") == 124 else p.get("status", "FAILED"))
        if name == "tests":
            res = f"{p.get('passed', 0)} passed, {p.get('failed', 0)} failed, {p.get('error', 0)} errors, " \
                  f"{p.get('skipped', 0)} skipped"
        elif name == "train":
            res = (f"s/epoch {', '.join(_f(x) for x in p.get('epoch_seconds', []))}; predicted {PROTOCOL_EPOCHS}-epoch "
                   f"protocol {_f(p.get('predicted_protocol_minutes'))} min; val Dice "
                   f"{', '.join(_f(x, '.3f') for x in p.get('val_dice', []))}")
        elif name == "search":
            res = (f"{p.get('trials_finished', 0)} trials in {_f(p.get('seconds'), '.0f')} s = "
                   f"{_f(p.get('trials_per_minute'), '.2f')}/min (start-up included; "
                   f"{_f(p.get('trial_seconds_mean'))} s per trial); GPU util mean "
                   f"{_f(p.get('gpu_util_mean_pct'), '.0f')} %, max {_f(p.get('gpu_util_max_pct'), '.0f')} %, "
                   f"memory max {_f(p.get('gpu_mem_max_mib'), '.0f')} MiB")
        else:
            res = f"{len(p.get('rows', []))} rows (table below)"
        lines.append(f"| {name} | {status} | {_f(p.get('seconds'), '.0f')} | {res} |")
    speed = s["parts"].get("speed", {})
    if speed.get("rows"):
        lines += ["", f"Speed at {speed.get('size')}x{speed.get('size')}, batch {speed.get('batch')}, bf16 + "
                      f"channels_last; matmul peak {_f((speed.get('peak_flops') or 0) / 1e12, '.3g')} TFLOP/s "
                      "(bf16 8192^3 on CUDA) measured in the same run.", "",
                  "| model | mode | img/s | ms/step | TFLOP/s | of peak | peak memory (MiB) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in speed["rows"]:
            if r.get("error"):
                lines.append(f"| {r['label']} | {r['mode']} | failed: {r['error'][:80]} | | | | |")
                continue
            lines.append(f"| {r['label']} | {r['mode']} | {r['images_per_s']:.1f} | {r['time_ms']:.1f} | "
                         f"{r['achieved_flops'] / 1e12:.3g} | {100 * r['frac_peak']:.1f} % | "
                         f"{_f(r.get('peak_memory_mb'), '.0f')} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", action="store_true", help="print what it would run and the predicted minutes")
    p.add_argument("--prepare", action="store_true", help="here: fill .gpu_carry/ (wheels, dsb2018 at 224 px)")
    p.add_argument("--data", type=Path, help="--prepare: the data set to copy [../shared/data/dsb2018]")
    p.add_argument("--images", type=int, default=0, help="--prepare: keep this many images (0: all) [0]")
    p.add_argument("--no-wheels", dest="wheels", action="store_false", help="--prepare: the data only")
    p.add_argument("--limit-mib", type=float, default=gpu_carry.LIMIT_MIB, help=argparse.SUPPRESS)
    p.add_argument("--cpu-smoke", action="store_true", help="run every part on the CPU at toy sizes (checks the "
                   "driver itself before a GPU lease is spent on it)")
    p.add_argument("--parts", default=",".join(n for n, _, _ in PARTS), help="comma-separated subset, in order")
    p.add_argument("--budget", type=int, default=BUDGET_S, help=f"seconds in all [{BUDGET_S}]")
    p.add_argument("--out", type=Path, default=REPO / "results" / "gpu_check", help="summary and logs")
    p.add_argument("--work", type=Path, default=REPO / "results" / "gpu_check" / "work", help="run folders")
    return p.parse_args(argv)


def cuda_present() -> bool:
    """torch.cuda.is_available(), without importing torch where no NVIDIA device node exists."""
    if not any(Path("/dev").glob("nvidia*")):
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # no torch at all
        return False


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unknown = set(args.parts.split(",")) - set(RUNNERS)
    if unknown:
        return fail(f"unknown part {sorted(unknown)[0]!r}; choose from {', '.join(RUNNERS)}")
    if args.plan:
        print(plan_text(args.budget))
        return 0
    if args.prepare:
        try:
            m = gpu_carry.prepare(data=args.data, images=args.images, wheels=args.wheels, limit_mib=args.limit_mib)
        except CarryError as e:
            return fail(str(e))
        print(f"prepared {CARRY}: {len(m.get('wheels', []))} wheels, {m['data']['images']} images "
              f"at {m['data']['size']} px; {m['carry_mib']:.1f} MiB + working tree {m['tree_mib']:.1f} MiB = "
              f"{m['total_mib']:.1f} of {args.limit_mib:g} MiB. Then: device tool run with carry [\".gpu_carry\"] "
              "and command: bash benchmarks/gpu_check.sh --out $OUT/gpu_check")
        return 0
    use_profile(args.cpu_smoke)
    if not args.cpu_smoke and not cuda_present():
        return fail("the GPU check needs CUDA and this machine has no CUDA device; run it on a CUDA machine "
                    "(README: GPU check), or use --plan / --prepare here")
    return run(args)


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    args.budget *= P["cap_scale"]
    deadline = t0 + args.budget
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    summary = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "budget_s": args.budget, "parts": {},
               "profile": dict(P)}
    summary["setup"] = setup(args.out)
    write_summary(args.out, summary)
    caps = {name: cap and cap * P["cap_scale"] for name, cap, _ in PARTS}
    for name in args.parts.split(","):
        left = deadline - time.monotonic()
        cap = min(caps[name] or search_cap(args.budget, left), left)
        if not summary["setup"]["ok"] or cap < 10:
            summary["parts"][name] = {"ok": False, "status": "skipped (" + ("setup failed" if not summary["setup"]["ok"]
                                                                             else "no time left") + ")"}
        else:
            print(f"[gpu_check] {name} (cap {cap:.0f} s) ...", flush=True)
            try:
                summary["parts"][name] = RUNNERS[name](args.out, args.work, cap)
            except Exception as e:  # a part's own bug: report it, run the others
                summary["parts"][name] = {"ok": False, "status": f"crashed: {type(e).__name__}: {e}"[:300]}
            print(f"[gpu_check] {name}: {'ok' if summary['parts'][name].get('ok') else 'FAILED'}", flush=True)
        summary["seconds"] = time.monotonic() - t0
        write_summary(args.out, summary)
    ok = summary["setup"]["ok"] and all(p.get("ok") for p in summary["parts"].values())
    summary["exit"] = 0 if ok else 1
    write_summary(args.out, summary)
    print((args.out / "summary.md").read_text(), flush=True)
    return summary["exit"]


if __name__ == "__main__":
    raise SystemExit(main())
