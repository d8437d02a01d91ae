"""What the GPU check carries to a machine that reaches no package registry and no ../shared.

``prepare`` (run here, with a registry and the data at hand) fills one git-ignored folder,
``.gpu_carry/``, that the device tool's ``carry`` names:

- ``wheels/``: the project's Python dependencies a CUDA image may lack (pinned to the versions
  this checkout tests with; monai for the peer benchmark), never torch or numpy;
- ``data/dsb2018/``: a copy of ``../shared/data/dsb2018`` resized to 224 px (the paper's size; PNG,
  its split file kept), never committed;
- ``MANIFEST.json``: what is in it, and the bytes that travel (working tree + carry, 64 MiB at most).

``install_missing`` (run there) installs only the carried wheels the machine lacks, into a folder
that ``PYTHONPATH`` then names; the machine's own torch, numpy and CUDA stack stay as they are.
"""

from __future__ import annotations

import csv
import importlib.metadata as metadata
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRY = Path(os.environ.get("PLSEARCH_GPU_CARRY") or REPO / ".gpu_carry")  # tests point it elsewhere
LIMIT_MIB = 64.0  # what the device tool takes along: working tree + carried paths
# Distributions to carry (import closure of plsearch's [project] dependencies without torch,
# numpy, matplotlib, pillow, pyyaml, which every CUDA image with PyTorch holds), plus monai.
CARRY_DISTS = ("optuna", "alembic", "sqlalchemy", "mako", "colorlog", "fvcore", "iopath", "yacs", "termcolor",
               "portalocker", "tabulate", "torchinfo", "nibabel", "einops", "tqdm", "typing_extensions", "packaging")
PEERS = {"monai": "1.6.1"}  # not installed here (extra "bench"): a version that supports torch >= 2.8, numpy 2
DIRECT = {"optuna", "fvcore", "torchinfo", "nibabel", "einops", "tqdm", "monai"}  # upgraded when older there
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
            "--platform", "manylinux2014_x86_64", "--platform", "any"]  # the GPU image: CPython 3.12, x86-64


class CarryError(RuntimeError):
    """Preparing or installing the carried files failed (the message says what to do)."""


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for dist in CARRY_DISTS:
        try:
            pins[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise CarryError(f"{dist} is not installed here; pip install -e '.[dev]' first") from None
    return {**pins, **PEERS}


def download_wheels(dest: Path, pins: dict[str, str] | None = None) -> list[Path]:
    """``pip download`` each pinned distribution for the GPU image; build a wheel where PyPI has only
    an sdist (fvcore, iopath: pure Python)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    for dist, version in (pins or _pins()).items():
        spec = f"{dist}=={version}"
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), *PLATFORM,
                              spec], capture_output=True, text=True)
        if got.returncode != 0:  # sdist only: build it here (pure-Python packages give py3-none-any wheels)
            got = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), spec],
                                 capture_output=True, text=True)
        if got.returncode != 0:
            raise CarryError(f"could not fetch {spec}: {got.stderr.strip().splitlines()[-1:]}; check the network")
    wheels = sorted(dest.glob("*.whl"))
    for whl in wheels:
        if not whl.name.endswith(("-none-any.whl", "x86_64.whl")):
            raise CarryError(f"{whl.name} is not for x86-64 CPython 3.12; pin another version of it")
    return wheels


def _split(src: Path) -> dict[str, str]:
    files = sorted(src.glob("split*.csv"))
    if not files:
        return {}
    with open(files[0], newline="") as f:
        return {row["id"]: row["split"] for row in csv.DictReader(f)}


def copy_data(src: Path, dest: Path, *, size: int = 224, images: int = 0, seed: int = 0) -> dict:
    """``src`` (images/, masks/, split*.csv) resized to ``size`` px squares into ``dest`` (images
    bilinear, masks nearest, as plsearch's loader resizes); ``images`` > 0 keeps a seeded sample of
    that many, in the split's proportions."""
    from PIL import Image

    ids = sorted(p.stem for p in (src / "images").glob("*.png") if (src / "masks" / p.name).is_file())
    if not ids:
        raise CarryError(f"no images/<id>.png with masks/<id>.png in {src}; point --data at a data set folder")
    split = _split(src)
    if images and images < len(ids):
        rng = random.Random(seed)
        by_split: dict[str, list[str]] = {}
        for i in ids:
            by_split.setdefault(split.get(i, "all"), []).append(i)
        keep: list[str] = []
        for group in by_split.values():
            keep += rng.sample(group, max(1, round(images * len(group) / len(ids))))
        ids = sorted(keep)
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for old in (dest / sub).glob("*.png"):
            old.unlink()
    for i in ids:
        with Image.open(src / "images" / f"{i}.png") as im:
            im.convert("RGB").resize((size, size), Image.BILINEAR).save(dest / "images" / f"{i}.png")
        with Image.open(src / "masks" / f"{i}.png") as m:
            m.convert("L").resize((size, size), Image.NEAREST).save(dest / "masks" / f"{i}.png")
    if split:
        with open(dest / "split_80_20.csv", "w", newline="") as f:
            f.write("id,split\n" + "".join(f"{i},{split[i]}\n" for i in ids if i in split))
    (dest / "SOURCE.md").write_text(f"{len(ids)} images of {src.name} resized to {size}x{size} px by "
                                    "benchmarks/gpu_carry.py for the GPU check; see the original's SOURCE.md.\n")
    return {"images": len(ids), "size": size, "source": str(src)}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the working tree the device tool sends: tracked files and untracked ones git does not ignore."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout
    return sum((repo / p).stat().st_size for p in out.split("\0") if p and (repo / p).is_file())


def prepare(carry: Path = CARRY, *, data: Path | None = None, images: int = 0, size: int = 224, wheels: bool = True,
            limit_mib: float = LIMIT_MIB, repo: Path = REPO) -> dict:
    """Fill ``carry`` (see the module doc) and check that it and the working tree fit ``limit_mib``."""
    t0 = time.perf_counter()
    carry.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if wheels:
        manifest["wheels"] = [w.name for w in download_wheels(carry / "wheels")]
    data = data or repo.parent / "shared" / "data" / "dsb2018"
    if not (data / "images").is_dir():
        raise CarryError(f"data set {data} not found; pass --data with a folder holding images/ and masks/")
    manifest["data"] = copy_data(data, carry / "data" / "dsb2018", size=size, images=images)
    manifest["carry_mib"] = folder_bytes(carry) / 2**20
    manifest["tree_mib"] = tree_bytes(repo) / 2**20
    manifest["total_mib"] = manifest["carry_mib"] + manifest["tree_mib"]
    manifest["seconds"] = time.perf_counter() - t0
    (carry / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if manifest["total_mib"] > limit_mib:
        raise CarryError(f"working tree {manifest['tree_mib']:.1f} MiB + {carry.name} {manifest['carry_mib']:.1f} MiB "
                         f"= {manifest['total_mib']:.1f} MiB is over the {limit_mib:g} MiB the device tool carries; "
                         "prepare fewer --images")
    return manifest


def _version_key(text: str) -> tuple:
    try:
        from packaging.version import Version

        return (Version(text),)
    except Exception:  # no packaging, or an odd version string: compare numerically where possible
        return tuple(int(p) if p.isdigit() else 0 for p in text.split("."))


def install_missing(carry: Path, site: Path) -> dict[str, list[str]]:
    """Install each carried wheel this Python lacks (or, for plsearch's direct dependencies, has in an
    older version) into ``site`` with pip, offline; returns what was installed and what was present."""
    found = sorted((carry / "wheels").glob("*.whl"))
    need, present = [], []
    for whl in found:
        name, version = whl.name.split("-")[:2]
        try:
            have = metadata.version(canonical(name))
        except metadata.PackageNotFoundError:
            need.append(whl)
            continue
        if canonical(name) in DIRECT and _version_key(have) < _version_key(version):
            need.append(whl)
        else:
            present.append(f"{canonical(name)} {have}")
    if need:
        site.mkdir(parents=True, exist_ok=True)
        got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                              "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, need)],
                             capture_output=True, text=True)
        if got.returncode != 0:
            raise CarryError(f"pip could not install the carried wheels: {got.stderr.strip()[-300:]}")
    return {"installed": [w.name for w in need], "present": present}
