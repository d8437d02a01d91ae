"""The parts of the GPU check (``gpu_check.py``): each runs as a capped subprocess and returns a dict
with ``ok``, ``exit`` (124: cut at its cap) and its figures; logs go to the summary folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_carry import CARRY, REPO  # noqa: E402

SITE = Path("/tmp/plsearch-gpu-site")
SEARCH_S = 120
SPEED_MODELS = (("plnet", "PL-Net"), ("plnet-small", "PL-Net\u2020"), ("basicunet", "MONAI BasicUNet"))
TRAIN_EPOCHS = 3
PROTOCOL_EPOCHS = 200  # the paper's: up to 200 epochs (early stopping 20), 224 px, batch 16, Adam 1e-4
# What the parts run: on the GPU, and a CPU smoke run of the same plumbing at toy sizes
# (``gpu_check.py --cpu-smoke``: the driver's own code is checked before a lease is spent on it).
GPU = {"device": "cuda", "size": 224, "batch": 16, "repeats": 8, "warmup": 2, "epochs": TRAIN_EPOCHS, "max_steps": 0,
       "search_s": SEARCH_S, "placement": ["--devices", "cuda:0"], "search_sets": [], "smoke": False, "cap_scale": 1,
       "speed_specs": [spec for spec, _ in SPEED_MODELS]}
SMOKE = {"device": "cpu", "size": 32, "batch": 2, "repeats": 1, "warmup": 1, "epochs": 2, "max_steps": 2,
         "search_s": 25, "placement": ["--device", "cpu"], "smoke": True, "cap_scale": 8,  # a busy 2-core CPU
         "search_sets": ["--set", "data.image_size=32", "--set", "train.epochs=1",
                         "--set", "train.max_steps_per_epoch=1"],
         "speed_specs": ["plnet:base_width=4", "plnet-small:base_width=4", "basicunet"]}
P = dict(GPU)


def use_profile(smoke: bool) -> None:
    P.clear()
    P.update(SMOKE if smoke else GPU)


def gpu_test_files() -> list[str]:
    """Test files with gpu-marked tests; test_cuda_proxies.py last (its inductor compile is the slowest)."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text(errors="ignore"))
    return sorted(files, key=lambda f: f.endswith("test_cuda_proxies.py"))


def search_space() -> Path:
    dsb = REPO / "search_spaces" / "ipl_epl_dsb2018.yaml"
    return dsb if dsb.is_file() else REPO / "search_spaces" / "ipl_epl.yaml"


def env_for_parts() -> dict[str, str]:
    paths = [str(REPO), str(SITE)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    data = CARRY / "data"
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1",
                PLSEARCH_DATA_DIR=str(data if (data / "dsb2018").is_dir() else REPO.parent / "shared" / "data"),
                PLSEARCH_CACHE_DIR=os.environ.get("PLSEARCH_CACHE_DIR", "/tmp/plsearch-gpu-cache"))


def dsb2018() -> Path:
    return Path(env_for_parts()["PLSEARCH_DATA_DIR"]) / "dsb2018"


def run_logged(cmd: list[str], log: Path, timeout: float, sampler: "GpuSampler | None" = None) -> tuple[int, float]:
    """Run ``cmd`` with its output in ``log``; on timeout SIGINT it (searches re-queue), then kill it."""
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=env_for_parts(),
                                start_new_session=True)
        if sampler:
            sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 2)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            code = 124
        finally:
            if sampler:
                sampler.stop()
    return code, time.monotonic() - t0


class GpuSampler:
    """GPU utilisation and memory every second from nvidia-smi (else torch.cuda.utilization)."""

    def __init__(self) -> None:
        self.util: list[float] = []
        self.mem_mib: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,"
                                  "nounits", "-i", "0"], capture_output=True, text=True, timeout=5).stdout
            util, mem = (float(v) for v in out.strip().splitlines()[0].split(","))
        except Exception:
            import torch

            util, mem = float(torch.cuda.utilization(0)), float("nan")
        self.util.append(util)
        self.mem_mib.append(mem)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._sample()
            except Exception:  # no nvidia-smi and no pynvml: report nothing rather than fail the search
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict:
        busy = self.util
        return {"gpu_util_mean_pct": sum(busy) / len(busy) if busy else None,
                "gpu_util_max_pct": max(busy) if busy else None, "samples": len(busy),
                "gpu_mem_max_mib": max(self.mem_mib) if self.mem_mib else None}


def part_tests(out: Path, work: Path, cap: float) -> dict:
    log = out / "tests.log"
    code, secs = run_logged([sys.executable, "-m", "pytest", "-m", "gpu", "-v", "-p", "no:cacheprovider",
                             *gpu_test_files()], log, cap)
    text = log.read_text(errors="ignore")
    results = re.findall(r"^(tests/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED)", text, re.M)
    counts = {s: sum(1 for _, r in results if r == s) for s in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
    if P["smoke"]:  # no CUDA: every gpu test skips; the run checks collection and log parsing
        ok = code == 0 and counts["SKIPPED"] > 0
    else:
        ok = code == 0 and counts["PASSED"] > 0 and not counts["SKIPPED"]
    return {"ok": ok, "exit": code, "seconds": secs, **{k.lower(): v for k, v in counts.items()},
            "not_passed": [t for t, r in results if r != "PASSED"]}


def part_speed(out: Path, work: Path, cap: float) -> dict:
    res = work / "speed.json"
    code, secs = run_logged([sys.executable, str(Path(__file__)), "speed-worker", str(res), json.dumps(P)],
                            out / "speed.log", cap)
    rows = json.loads(res.read_text()) if res.is_file() else {}
    return {"ok": code == 0 and bool(rows) and not any(r.get("error") for r in rows.get("rows", [])),
            "exit": code, "seconds": secs, **rows}


def speed_worker(res: Path, p: dict) -> None:
    """In its own process: every speed row, written after each model so a cut-off run keeps them."""
    import benchlib
    import torch

    from plsearch.nn.speed import configure_backends, cuda_paths_on

    device, size, batch = torch.device(p["device"]), p["size"], p["batch"]
    configure_backends(device)
    rows: list[dict] = []
    peaks: list[float] = []
    meta = {"machine": benchlib.machine(device), "batch": batch, "size": size, "variant": "cl+amp"}
    for spec, (_, label) in zip(p["speed_specs"], SPEED_MODELS):
        macs = None
        for mode in ("train", "forward"):
            case = None
            try:
                with cuda_paths_on(device.type):  # smoke run: bf16 autocast on the CPU too
                    case = benchlib.make_case(spec, "cl+amp", mode, batch, size, device)
                times, mm = benchlib.time_interleaved([case], device, repeats=p["repeats"], warmup=p["warmup"])
                peaks += mm
                r = benchlib.row(case, times[case.variant], size=size, batch=batch,
                                 macs_img=macs or benchlib.macs_per_image(benchlib.build_model(spec), size),
                                 peak_flops=max(peaks), params=benchlib.params_of(case.model))
                macs = r["macs_per_image"]  # fvcore on the CPU: once per model
                if not case.error:
                    r["peak_memory_mb"] = benchlib.train_peak_memory_mb(case, device)
            except Exception as e:  # a model that fails is a row with its error, the others still run
                r = {"model": spec, "mode": mode, "error": f"{type(e).__name__}: {e}"[:300]}
            r["label"] = label
            rows.append(r)
            del case
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if peaks:
                benchlib.set_peak(rows, max(peaks))
            res.write_text(json.dumps({"rows": rows, "peak_flops": max(peaks) if peaks else None, **meta}, indent=2))


def part_train(out: Path, work: Path, cap: float) -> dict:
    run_dir = work / "train"
    shutil.rmtree(run_dir, ignore_errors=True)
    code, secs = run_logged([sys.executable, "benchmarks/train_dsb2018.py", "--data", str(dsb2018()), "--size",
                             str(P["size"]), "--epochs", str(P["epochs"]), "--lr", "1e-4",
                             "--batch-size", str(P["batch"]),
                             "--models", "plnet", "--set-plnet", "base_width=4" if P["smoke"] else "", "--threads", "0",
                             "--device", P["device"], "--max-steps", str(P["max_steps"]), "--out", str(run_dir)],
                            out / "train.log", cap)
    log = run_dir / "plnet" / "log.jsonl"
    epochs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    result = {"ok": code == 0 and len(epochs) == P["epochs"], "exit": code, "seconds": secs,
              "epoch_seconds": [e["seconds"] for e in epochs], "val_dice": [e["val_dice"] for e in epochs]}
    m = re.search(r"data: train (\d+), val (\d+), test (\d+)", (out / "train.log").read_text(errors="ignore"))
    if m:
        result["images"] = dict(zip(("train", "val", "test"), map(int, m.groups())))
    if len(epochs) >= 2:
        steady = sorted(e["seconds"] for e in epochs[1:])[len(epochs[1:]) // 2]  # the first epoch autotunes
        result["steady_seconds_per_epoch"] = steady
        result["predicted_protocol_minutes"] = steady * PROTOCOL_EPOCHS / 60
    return result


def part_search(out: Path, work: Path, cap: float) -> dict:
    run_dir = work / "search"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh study: count this run's trials only
    seconds = max(10, min(P["search_s"], cap - 25))
    sampler = GpuSampler() if P["device"] == "cuda" else None
    code, secs = run_logged([sys.executable, "-m", "plsearch.search", "--space", str(search_space()), "--data",
                             str(dsb2018()), "--workers", "2", *P["placement"], "--timeout", str(seconds),
                             "--n-trials", "1000", "--no-references", "--no-plots", "--out", str(run_dir),
                             *P["search_sets"]], out / "search.log", cap, sampler)
    records = run_dir / "trials.jsonl"
    trials = [json.loads(line) for line in records.read_text().splitlines()] if records.is_file() else []
    done = [t for t in trials if t.get("state") in ("COMPLETE", "PRUNED")]
    text = (out / "search.log").read_text(errors="ignore")
    busy = sum(t.get("seconds") or 0 for t in done)  # worker-seconds inside trials
    return {"ok": code == 0 and bool(done), "exit": code, "seconds": secs, "search_seconds": seconds,
            "space": str(search_space().relative_to(REPO)), "trials_finished": len(done),
            "trials_failed": sum(t.get("state") == "FAIL" for t in trials),
            "trials_per_minute": len(done) / (secs / 60) if secs else None,  # start-up and records included
            "trial_seconds_mean": busy / len(done) if done else None,
            "workers_on": re.findall(r"starting 2 workers on (.*)", text)[:1],
            **(sampler.summary() if sampler else {})}


RUNNERS = {"tests": part_tests, "speed": part_speed, "train": part_train, "search": part_search}


if __name__ == "__main__" and sys.argv[1:2] == ["speed-worker"]:
    speed_worker(Path(sys.argv[2]), json.loads(sys.argv[3]))
