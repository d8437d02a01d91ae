"""Drive the careless/hostile inputs of issue 11 against the CLIs and record what each one got.

Each case runs ``python -m plsearch.<cli> ...`` in a fresh temp folder (a subprocess, so a traceback
or an out-of-memory is seen as the user sees it) and records: exit code, the first error line (the
``error:`` line, or the traceback's last line), whether any file the case names as an input changed
(SHA-256 before/after), whether a file it says must not appear appeared, and whether a password was
printed. Run it against a checkout with ``PYTHONPATH``::

    PYTHONPATH=/work/snap-h3-base python3 benchmarks/safety_inputs.py --out results/safety/before.json
    PYTHONPATH=$PWD python3 benchmarks/safety_inputs.py --out results/safety/after.json
    python3 benchmarks/safety_inputs.py --table results/safety/before.json results/safety/after.json

``--only NAME,...`` runs a subset. Results are written after every case (resumable with ``--resume``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

SECRET = "p'a\"s s@:/%40w"  # every URL character that broke the old pattern-based redaction
SECRET_Q = "p%27a%22s%20s%40%3A%2F%2540w"  # the same, %-escaped as a URL holds it
TRAIN = ["--model", "unet", "--set", "base_width=4", "--set", "depth=3", "--set", "train.batch_size=8",
         "--set", "data.synthetic_count=8",
         "--image-size", "32", "--device", "cpu", "--epochs", "1", "--quiet"]
SEARCH = ["--no-references", "--no-plots", "--n-trials", "1"]
def _tiny() -> str:
    """tiny.yaml of the checkout under test (PYTHONPATH), so each version reads a space it knows."""
    import plsearch

    return str(Path(plsearch.__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml")


TINY = _tiny()


def sha_tree(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        if not files:
            out[str(p)] = "absent" if not p.exists() else "empty-dir"
    return out


def data(root: Path, n: int = 8, size: int = 32) -> Path:
    from plsearch.data.synthetic import write_synthetic

    return write_synthetic(root, n, size, seed=1)


def run(cli: str, args: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> dict[str, Any]:
    mod = "plsearch.search" if cli == "search" else f"plsearch.{cli}"
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", mod, *args], cwd=cwd, env=e, capture_output=True, text=True,
                           timeout=timeout)
        code, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as x:
        code, out, err = "timeout", str(x.stdout or ""), str(x.stderr or "")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    first = next((ln for ln in lines if ln.startswith("error:")), None)
    if first is None and "Traceback" in err:
        first = "TRACEBACK " + lines[-1]
    if first is None and code not in (0,):
        first = (lines[-1] if lines else f"(no output, exit {code})")
    if first is None:
        first = "(ok) " + ((out.strip().splitlines() or [""])[-1])[:150]
    return {"code": code, "first": first[:300], "seconds": round(time.perf_counter() - t, 1), "stdout": out,
            "stderr": err}


CASES: dict[str, Callable[[Path], dict]] = {}


def case(klass: str, label: str):
    def deco(fn):
        fn.klass, fn.label = klass, label
        CASES[fn.__name__] = fn
        return fn
    return deco


_RUN_CACHE: dict[str, Path] = {}


def trained_run(tmp: Path, model: str = "unet") -> Path:
    """A tiny trained run (made once per script run, copied per case)."""
    if model not in _RUN_CACHE:
        base = Path(tempfile.mkdtemp(prefix="safety-run-"))
        d = data(base / "D")
        args = [a if a != "unet" else model for a in TRAIN]
        r = run("train", ["--data", str(d), *args, "--out", str(base / "run")], base)
        if r["code"] != 0:
            raise RuntimeError(f"fixture training failed: {r['stderr'][-800:]}")
        _RUN_CACHE[model] = base
    shutil.copytree(_RUN_CACHE[model] / "run", tmp / f"run_{model}")
    if not (tmp / "D").exists():
        shutil.copytree(_RUN_CACHE[model] / "D", tmp / "D")
    return tmp / f"run_{model}"


def search_results(tmp: Path, name: str = "A", space: str = TINY) -> Path:
    out = tmp / "results" / name
    r = run("search", ["--space", space, "--out", str(out), "--study-name", name, *SEARCH], tmp)
    if r["code"] != 0:
        raise RuntimeError(f"fixture search failed: {r['stderr'][-800:]}")
    return out


def other_space(tmp: Path) -> Path:
    text = Path(TINY).read_text().replace("objectives: [val_dice, params]", "objectives: [val_dice, macs]")
    p = tmp / "other.yaml"
    p.write_text(text)
    return p


def foreign_sqlite(tmp: Path) -> Path:
    db = tmp / "other_app.db"
    with sqlite3.connect(db) as c:
        c.execute("create table customers (id integer primary key, name text)")
        c.execute("insert into customers (name) values ('alice')")
    return db


# ----------------------------------------------------------------------------- 1. outputs over inputs
@case("1 outputs", "predict --input D/images --out D/images")
def predict_out_is_input(tmp):
    run_dir = trained_run(tmp)
    return {"cli": "predict", "args": ["--checkpoint", str(run_dir / "best.pt"), "--input", "D/images", "--out",
                                       "D/images", "--device", "cpu"], "inputs": ["D"]}


@case("1 outputs", "predict --input D --out D/masks (the ground truth)")
def predict_out_is_masks(tmp):
    run_dir = trained_run(tmp)
    return {"cli": "predict", "args": ["--checkpoint", str(run_dir / "best.pt"), "--input", "D", "--out", "D/masks",
                                       "--device", "cpu"], "inputs": ["D"]}


@case("1 outputs", "predict --out D/images/pred (inside the input)")
def predict_out_inside_input(tmp):
    run_dir = trained_run(tmp)
    return {"cli": "predict", "args": ["--checkpoint", str(run_dir / "best.pt"), "--input", "D/images", "--out",
                                       "D/images/pred", "--device", "cpu"], "inputs": ["D"]}


@case("1 outputs", "predict a.png + a.jpg (one stem) -> one mask, 'wrote 2'")
def predict_same_stem(tmp):
    run_dir = trained_run(tmp)
    imgs = tmp / "in"
    imgs.mkdir()
    src = sorted((tmp / "D" / "images").iterdir())[0]
    shutil.copy(src, imgs / "a.png")
    from PIL import Image

    Image.open(src).convert("RGB").save(imgs / "a.jpg")
    return {"cli": "predict", "args": ["--checkpoint", str(run_dir / "best.pt"), "--input", "in", "--out", "pred",
                                       "--device", "cpu"], "inputs": ["in"], "expect_files": ["pred/a.png", "pred/a_png.png", "pred/a_jpg.png",
                                                                                              ]}


@case("1 outputs", "predict --out FOLDER holding a user's own a.png")
def predict_over_foreign_file(tmp):
    run_dir = trained_run(tmp)
    imgs = tmp / "in"
    imgs.mkdir()
    shutil.copy(sorted((tmp / "D" / "images").iterdir())[0], imgs / "a.png")
    (tmp / "mine").mkdir()
    (tmp / "mine" / "a.png").write_bytes(b"the user's own file")
    return {"cli": "predict", "args": ["--checkpoint", str(run_dir / "best.pt"), "--input", "in", "--out", "mine",
                                       "--device", "cpu"], "inputs": ["in", "mine"]}


@case("1 outputs", "train --out EXISTING_FILE")
def train_out_file(tmp):
    (tmp / "notes.txt").write_text("precious")
    return {"cli": "train", "args": [*TRAIN, "--out", "notes.txt"], "inputs": ["notes.txt"]}


@case("1 outputs", "train --data D --out D (the data folder)")
def train_out_is_data(tmp):
    data(tmp / "D")
    return {"cli": "train", "args": ["--data", "D", *TRAIN, "--out", "D"], "inputs": ["D"]}


@case("1 outputs", "evaluate --out EXISTING_FILE")
def evaluate_out_file(tmp):
    run_dir = trained_run(tmp)
    (tmp / "notes.txt").write_text("precious")
    return {"cli": "evaluate", "args": ["--checkpoint", str(run_dir / "best.pt"), "--data", "D", "--out",
                                        "notes.txt", "--device", "cpu"], "inputs": ["notes.txt", "D"]}


@case("1 outputs", "evaluate --data D --out D/masks")
def evaluate_out_in_data(tmp):
    run_dir = trained_run(tmp)
    return {"cli": "evaluate", "args": ["--checkpoint", str(run_dir / "best.pt"), "--data", "D", "--out", "D/masks",
                                        "--device", "cpu"], "inputs": ["D"]}


# ----------------------------------------------------------------------------- 2. storages and folders
@case("2 storages", "search --storage sqlite:///other_app.db (a non-Optuna SQLite file)")
def search_foreign_sqlite(tmp):
    foreign_sqlite(tmp)
    return {"cli": "search", "args": ["--space", TINY, "--storage", f"sqlite:///{tmp}/other_app.db", "--out", "R",
                                      *SEARCH], "inputs": ["other_app.db"]}


@case("2 storages", "report --storage sqlite:///other_app.db")
def report_foreign_sqlite(tmp):
    foreign_sqlite(tmp)
    return {"cli": "report", "args": ["--storage", f"sqlite:///{tmp}/other_app.db", "--out", "R"],
            "inputs": ["other_app.db"]}


@case("2 storages", "report --storage sqlite:///new.db (does not exist)")
def report_missing_sqlite(tmp):
    return {"cli": "report", "args": ["--storage", f"sqlite:///{tmp}/new.db", "--out", "R"],
            "inputs": ["new.db"]}


@case("2 storages", "search --storage notes.journal (a text file, not a journal)")
def search_text_journal(tmp):
    (tmp / "notes.journal").write_text("my diary\nday 1\n")
    return {"cli": "search", "args": ["--space", TINY, "--storage", "notes.journal", "--out", "R", *SEARCH],
            "inputs": ["notes.journal"]}


@case("2 storages", "search --storage sqlite:///photo.db (a PNG file named .db)")
def search_png_sqlite(tmp):
    d = data(tmp / "D", 4)
    shutil.copy(sorted((d / "images").iterdir())[0], tmp / "photo.db")
    return {"cli": "search", "args": ["--space", TINY, "--storage", f"sqlite:///{tmp}/photo.db", "--out", "R",
                                      *SEARCH], "inputs": ["photo.db"]}


@case("2 storages", "search another space (other objectives) --out results/A of study A")
def search_other_study_same_out(tmp):
    out = search_results(tmp)
    sp = other_space(tmp)
    return {"cli": "search", "args": ["--space", str(sp), "--study-name", "B", "--out", str(out), *SEARCH],
            "inputs": ["results/A"]}


@case("2 storages", "report --storage OTHER_STUDY --out results/A")
def report_other_into_results(tmp):
    out = search_results(tmp)
    other = search_results(tmp, "B")
    return {"cli": "report", "args": ["--storage", f"sqlite:///{other}/study.db", "--out", str(out)],
            "inputs": ["results/A"]}


@case("2 storages", "search --study-name ../../x")
def search_name_dotdot(tmp):
    (tmp / "a" / "b").mkdir(parents=True)
    return {"cli": "search", "args": ["--space", TINY, "--study-name", "../../x", *SEARCH], "cwd": "a/b",
            "inputs": ["a"], "must_not_exist": ["x", "results", "a/x", "a/b/x"]}


@case("2 storages", "space file with name: ../../escaped")
def space_name_dotdot(tmp):
    (tmp / "a" / "b").mkdir(parents=True)
    sp = tmp / "sp.yaml"
    sp.write_text("name: ../../escaped\n" + Path(TINY).read_text())
    return {"cli": "search", "args": ["--space", str(sp), *SEARCH], "cwd": "a/b", "inputs": ["sp.yaml"],
            "must_not_exist": ["escaped", "a/escaped"]}


# ----------------------------------------------------------------------------- 3. numbers
for _key in ("model.norm_momentum", "train.lr", "model.ocs", "data.val_fraction", "train.rotation_deg",
             "train.weight_decay", "train.shift"):
    def _mk(key=_key):
        def fn(tmp):
            return {"cli": "train", "args": [*TRAIN, "--set", f"{key}=nan", "--out", "run"], "inputs": [],
                    "expect_field": key.split(".")[1]}
        fn.__name__ = "train_nan_" + key.replace(".", "_")
        return case("3 numbers", f"train --set {key}=nan")(fn)
    _mk()


@case("3 numbers", "train --set train.lr=inf")
def train_inf_lr(tmp):
    return {"cli": "train", "args": [*TRAIN, "--set", "train.lr=inf", "--out", "run"], "expect_field": "lr"}


@case("3 numbers", "train --set model.ocs=-.inf")
def train_minf_ocs(tmp):
    return {"cli": "train", "args": [*TRAIN, "--set", "model.ocs=-.inf", "--out", "run"], "expect_field": "ocs"}


@case("3 numbers", "search --timeout nan")
def search_timeout_nan(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--timeout", "nan", "--out", "R", *SEARCH],
            "must_not_exist": ["R/study.db"], "expect_field": "timeout"}


@case("3 numbers", "search --timeout inf")
def search_timeout_inf(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--timeout", "inf", "--out", "R", *SEARCH],
            "must_not_exist": ["R/study.db"], "expect_field": "timeout"}


@case("3 numbers", "search --set train.lr=nan")
def search_set_nan(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--set", "train.lr=nan", "--out", "R", *SEARCH],
            "must_not_exist": ["R/study.db"], "expect_field": "lr"}


@case("3 numbers", "space: train.lr {low: .nan, high: 0.1}")
def space_nan_range(tmp):
    sp = tmp / "sp.yaml"
    sp.write_text(Path(TINY).read_text() + "train.weight_decay: {low: .nan, high: 0.1}\n")
    return {"cli": "search", "args": ["--space", str(sp), "--out", "R", *SEARCH], "must_not_exist": ["R/study.db"],
            "expect_field": "weight_decay"}


@case("3 numbers", "space: constraints {params: .nan}")
def space_nan_constraint(tmp):
    sp = tmp / "sp.yaml"
    sp.write_text(Path(TINY).read_text() + "constraints: {params: .nan}\n")
    return {"cli": "search", "args": ["--space", str(sp), "--out", "R", *SEARCH], "must_not_exist": ["R/study.db"],
            "expect_field": "params"}


@case("3 numbers", "profile --set ocs=nan")
def profile_nan(tmp):
    return {"cli": "profile", "args": ["--model", "unet", "--set", "ocs=nan", "--input-size", "32",
                                       "--no-latency"], "expect_field": "ocs"}


# ----------------------------------------------------------------------------- 4. resume
@case("4 resume", "train --resume --set train.lr=nan (config.yaml must not change)")
def resume_nan(tmp):
    r = trained_run(tmp)
    return {"cli": "train", "args": [*TRAIN, "--out", str(r), "--resume", "--epochs", "2", "--set",
                                     "train.lr=nan"], "inputs": [r.name]}


@case("4 resume", "train --resume with last.pt of another preset")
def resume_other_preset(tmp):
    r = trained_run(tmp)
    import torch

    from plsearch.config.presets import preset_config

    ck = torch.load(r / "last.pt", weights_only=True)
    ck["model_config"] = preset_config("plnet-small", base_width=4, depth=3).to_dict()
    ck["run_config"]["model"] = ck["model_config"]
    torch.save(ck, r / "last.pt")
    return {"cli": "train", "args": [*TRAIN, "--out", str(r), "--resume", "--epochs", "2"],
            "inputs": [r.name]}


@case("4 resume", "train --resume with best.pt of another preset")
def resume_other_best(tmp):
    r = trained_run(tmp)
    import torch

    from plsearch.config.presets import preset_config

    ck = torch.load(r / "best.pt", weights_only=True)
    ck["model_config"] = preset_config("plnet-small", base_width=4, depth=3).to_dict()
    torch.save(ck, r / "best.pt")
    return {"cli": "train", "args": [*TRAIN, "--out", str(r), "--resume", "--epochs", "2"],
            "inputs": [r.name]}


@case("4 resume", "train --resume --data OTHER")
def resume_other_data(tmp):
    r = trained_run(tmp)
    data(tmp / "OTHER", 6)
    return {"cli": "train", "args": ["--data", "OTHER", *TRAIN, "--out", str(r), "--resume", "--epochs", "2"],
            "inputs": [r.name, "OTHER"], "note_if_ok": "OTHER"}


# ----------------------------------------------------------------------------- 5. secrets
def _pg(tmp):
    return f"postgresql://me:{SECRET_Q}@127.0.0.1:9/db"


@case("5 secrets", "search --storage postgresql://me:<p'a\"s s@:/%40w>@127.0.0.1:9/db (no server)")
def secret_search(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--storage", _pg(tmp), "--out", "R", *SEARCH], "secret": True}


@case("5 secrets", "search with the raw (unescaped) password in the URL")
def secret_search_raw(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--storage", f"postgresql://me:{SECRET}@127.0.0.1:9/db",
                                      "--out", "R", *SEARCH], "secret": True}


@case("5 secrets", "report --storage postgresql://...password... (no server)")
def secret_report(tmp):
    return {"cli": "report", "args": ["--storage", _pg(tmp), "--study", "x", "--out", "R"], "secret": True}


@case("5 secrets", "PLSEARCH_STORAGE=postgresql://... with password, search --verbose")
def secret_env(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--out", "R", "--verbose", *SEARCH],
            "env": {"PLSEARCH_STORAGE": _pg(tmp)}, "secret": True}


# ----------------------------------------------------------------------------- 6. space files
@case("6 space files", "a 0.4 kB space file of nested aliases (10**6 values)")
def space_aliases(tmp):
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]  # 10**6 values
    sp = tmp / "sp.yaml"
    sp.write_text(Path(TINY).read_text().replace("description:", "# description:") + "description: ["
                  + ", ".join(levels) + "]\n")
    return {"cli": "search", "args": ["--space", str(sp), "--out", "R", *SEARCH], "inputs": ["sp.yaml"],
            "must_not_exist": ["R/study.db"]}


@case("6 space files", "a 20 MB space file")
def space_huge(tmp):
    sp = tmp / "sp.yaml"
    sp.write_text(Path(TINY).read_text() + "# " + "x" * (20 * 2**20) + "\n")
    return {"cli": "search", "args": ["--space", str(sp), "--out", "R", *SEARCH], "must_not_exist": ["R/study.db"]}


# ----------------------------------------------------------------------------- 7. tracebacks
@case("7 tracebacks", "predict --image-size 100000")
def predict_huge(tmp):
    r = trained_run(tmp)
    return {"cli": "predict", "args": ["--checkpoint", str(r / "best.pt"), "--input", "D/images", "--out", "P",
                                       "--image-size", "100000", "--device", "cpu"], "inputs": ["D"]}


@case("7 tracebacks", "profile --model plnet --input-size 60000")
def profile_huge(tmp):
    return {"cli": "profile", "args": ["--model", "plnet", "--input-size", "60000", "--no-latency"]}


@case("7 tracebacks", "search --seed -1 (and no empty study.db)")
def search_seed_neg(tmp):
    return {"cli": "search", "args": ["--space", TINY, "--seed", "-1", "--out", "R", *SEARCH],
            "must_not_exist": ["R/study.db", "R"]}


@case("7 tracebacks", "train --seed? --set train.seed=-1")
def train_seed_neg(tmp):
    return {"cli": "train", "args": [*TRAIN, "--set", "train.seed=-1", "--out", "run"], "expect_field": "seed"}


@case("7 tracebacks", "train --data FOLDER_WITH_ONE_PAIR")
def train_one_pair(tmp):
    d = data(tmp / "D", 4)
    for f in sorted((d / "images").iterdir())[1:]:
        f.unlink()
    for f in sorted((d / "masks").iterdir())[1:]:
        f.unlink()
    return {"cli": "train", "args": ["--data", "D", *TRAIN, "--out", "run"], "inputs": ["D"]}


@case("7 tracebacks", "search --data FOLDER_WITH_ONE_PAIR")
def search_one_pair(tmp):
    d = data(tmp / "D", 4)
    for f in sorted((d / "images").iterdir())[1:]:
        f.unlink()
    for f in sorted((d / "masks").iterdir())[1:]:
        f.unlink()
    return {"cli": "search", "args": ["--space", TINY, "--data", "D", "--out", "R", *SEARCH], "inputs": ["D"]}


@case("7 tracebacks", "evaluate --data FOLDER_WITH_ONE_PAIR --split test")
def evaluate_one_pair(tmp):
    r = trained_run(tmp)
    d = tmp / "D1"
    data(d, 4)
    for sub in ("images", "masks"):
        for f in sorted((d / sub).iterdir())[1:]:
            f.unlink()
    return {"cli": "evaluate", "args": ["--checkpoint", str(r / "best.pt"), "--data", "D1", "--device", "cpu"],
            "inputs": ["D1"]}


def drive(name: str) -> dict[str, Any]:
    fn = CASES[name]
    tmp = Path(tempfile.mkdtemp(prefix=f"safety-{name}-"))
    try:
        spec = fn(tmp)
        inputs = [tmp / p for p in spec.get("inputs", [])]
        before = sha_tree(inputs)
        cwd = tmp / spec.get("cwd", ".")
        r = run(spec["cli"], spec["args"], cwd, spec.get("env"))
        after = sha_tree(inputs)
        changed = sorted(os.path.relpath(k, tmp) for k in set(before) | set(after) if before.get(k) != after.get(k))
        appeared = [p + (f" ({(tmp / p).stat().st_size / 2**20:.1f} MB)" if (tmp / p).is_file() else "")
                    for p in spec.get("must_not_exist", []) if (tmp / p).exists()]
        text = r["stdout"] + r["stderr"]
        leaked = bool(spec.get("secret")) and any(s in text for s in (SECRET, SECRET_Q, "p'a\"s s", "%2540w",
                                                                      "s s@", "p%27a"))
        field_named = None
        if spec.get("expect_field"):
            field_named = spec["expect_field"] in r["first"]
        extra = ""
        if spec.get("expect_files"):
            extra = "files: " + ", ".join(p for p in spec["expect_files"] if (tmp / p).exists())
        return {"name": name, "class": fn.klass, "label": fn.label, "code": r["code"], "first": r["first"],
                "changed": changed[:6], "n_changed": len(changed), "appeared": appeared, "leaked": leaked,
                "field_named": field_named, "extra": extra, "seconds": r["seconds"]}
    except Exception as e:  # a fixture failed: record it rather than stop
        return {"name": name, "class": fn.klass, "label": fn.label, "code": "fixture", "first": repr(e)[:300],
                "changed": [], "n_changed": 0, "appeared": [], "leaked": False, "field_named": None, "extra": "",
                "seconds": 0}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verdict(r: dict) -> str:
    bits = [f"exit {r['code']}"]
    if r["first"].startswith("TRACEBACK"):
        bits.append("traceback: " + r["first"][10:120])
    elif r["first"]:
        bits.append(r["first"][:160])
    if r["n_changed"]:
        bits.append(f"CHANGED {r['n_changed']} input file(s) ({', '.join(r['changed'][:2])})")
    if r["appeared"]:
        bits.append(f"LEFT {', '.join(r['appeared'])}")
    if r["leaked"]:
        bits.append("PASSWORD PRINTED")
    if r["field_named"] is False:
        bits.append("field not named")
    if r["extra"]:
        bits.append(r["extra"])
    return "; ".join(bits).replace("|", "\\|")


def table(before: Path, after: Path) -> str:
    b = {r["name"]: r for r in json.loads(before.read_text())}
    a = {r["name"]: r for r in json.loads(after.read_text())}
    rows = ["| class | input tried | before (c79f035) | now |", "|---|---|---|---|"]
    for name in a:
        rows.append(f"| {a[name]['class']} | `{a[name]['label']}` | {verdict(b[name]) if name in b else '-'} | "
                    f"{verdict(a[name])} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/safety/run.json")
    p.add_argument("--only", default="")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--table", nargs=2, metavar=("BEFORE", "AFTER"))
    args = p.parse_args()
    if args.table:
        print(table(Path(args.table[0]), Path(args.table[1])))
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if args.resume and out.is_file() else []
    done = {r["name"] for r in results}
    names = [n for n in (args.only.split(",") if args.only else CASES) if n not in done]
    for name in names:
        r = drive(name)
        results = [x for x in results if x["name"] != name] + [r]
        out.write_text(json.dumps(results, indent=1))
        print(f"{name:<32} {verdict(r)}", flush=True)


if __name__ == "__main__":
    main()
