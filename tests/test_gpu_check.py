"""benchmarks/gpu_check.sh without a GPU: the plan, the one-line refusal, and what --prepare carries."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data

REPO = Path(__file__).resolve().parents[1]
SCRIPT = ["bash", str(REPO / "benchmarks" / "gpu_check.sh")]


def run(*args: str, carry: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if carry is not None:
        env["PLSEARCH_GPU_CARRY"] = str(carry)
    return subprocess.run([*SCRIPT, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_plan_lists_the_parts_in_priority_order_and_the_minutes(tmp_path):
    got = run("--plan", carry=tmp_path / "none")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    parts = [line.split()[1] for line in lines if line.strip()[:2] in ("0.", "1.", "2.", "3.", "4.")]
    assert parts == ["setup", "tests", "speed", "train", "search"]
    assert "at most 4.0 min" in lines[0] and "not prepared yet" in got.stdout
    caps = [float(line.rsplit("<=", 1)[1].split()[0]) for line in lines if "<=" in line]
    assert len(caps) == 4 and sum(caps) <= 4.0  # the parts' caps fit the 4 minutes (with the setup's ~0.2)
    assert "tests/test_cuda_proxies.py" in got.stdout  # the gpu-marked tests it would run


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    got = run("--out", str(tmp_path / "out"))
    assert got.returncode == 2 and got.stdout == ""
    err = got.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "needs CUDA" in err[0]
    assert not (tmp_path / "out").exists()


def test_unknown_part_is_refused():
    got = run("--parts", "tests,nope")
    assert got.returncode == 2 and "unknown part 'nope'" in got.stderr


@pytest.mark.data
def test_prepare_copies_a_resized_sample_and_holds_the_size_bound(tmp_path):
    src = shared_data("dsb2018")
    carry = tmp_path / "carry"
    got = run("--prepare", "--no-wheels", "--images", "10", carry=carry)
    assert got.returncode == 0, got.stderr
    m = json.loads((carry / "MANIFEST.json").read_text())
    data = carry / "data" / "dsb2018"
    images = sorted(p.name for p in (data / "images").glob("*.png"))
    assert m["data"]["images"] == len(images) == 10 and images == sorted(p.name for p in (data / "masks").glob("*.png"))
    split = (data / "split_80_20.csv").read_text().splitlines()
    assert split[0] == "id,split" and len(split) == 11 and {r.split(",")[1] for r in split[1:]} == {"train", "test"}
    from PIL import Image

    with Image.open(data / "images" / images[0]) as im, Image.open(data / "masks" / images[0]) as mask:
        assert im.size == mask.size == (224, 224) and im.mode == "RGB" and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}  # nearest: still a 0/255 mask
    assert (src / "images" / images[0]).is_file()
    assert m["total_mib"] == pytest.approx(m["carry_mib"] + m["tree_mib"]) and m["total_mib"] < 64
    got = run("--prepare", "--no-wheels", "--images", "10", "--limit-mib", "0.5", carry=carry)  # too small a bound
    err = got.stderr.strip().splitlines()
    assert got.returncode == 2 and len(err) == 1 and "over the 0.5 MiB" in err[0]


@pytest.mark.slow
@pytest.mark.data
def test_full_prepare_fits_the_device_tool_and_the_cpu_smoke_run_passes(tmp_path):
    """All of dsb2018 at 224 px (no wheels: no network in CI) fits 64 MiB with the working tree; then
    every part of the check runs end to end on the CPU at toy sizes (the driver's own plumbing)."""
    shared_data("dsb2018")
    carry = tmp_path / "carry"
    got = run("--prepare", "--no-wheels", carry=carry, timeout=900)
    assert got.returncode == 0, got.stderr
    m = json.loads((carry / "MANIFEST.json").read_text())
    assert m["data"]["images"] == 670 and m["total_mib"] < 64 - 12  # room for the ~11 MiB of wheels
    got = run(
        "--cpu-smoke", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), carry=carry, timeout=1800
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert got.returncode == 0, (got.stdout[-2000:], summary)
    assert [name for name, p in summary["parts"].items() if p["ok"]] == ["tests", "speed", "train", "search"]
    assert summary["parts"]["search"]["trials_finished"] >= 1
    assert (tmp_path / "out" / "summary.md").read_text().startswith("# GPU check")
