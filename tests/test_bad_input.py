"""A careless user at every CLI: one ``error:`` line naming the problem and the fix, exit code 2, no
traceback, and whatever was stored before (a study, a journal, a training run) is byte-identical after.

Cases already covered elsewhere are not repeated here: tests/test_cli_train.py (train/evaluate/predict),
tests/test_profile.py, tests/test_search_space.py (space files), tests/test_search_e2e.py,
tests/test_report.py and tests/test_scale.py (password leaks).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plsearch.cli.evaluate import main as evaluate_main
from plsearch.cli.predict import main as predict_main
from plsearch.cli.profile import main as profile_main
from plsearch.cli.report import main as report_main
from plsearch.cli.search import main as search_main
from plsearch.cli.train import main as train_main
from plsearch.data.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")
MAINS = {
    "search": search_main,
    "train": train_main,
    "evaluate": evaluate_main,
    "predict": predict_main,
    "profile": profile_main,
    "report": report_main,
}
SEARCH = ["--no-references", "--no-plots", "--n-trials", "1"]
TRAIN = [
    "--model",
    "unet",
    "--set",
    "base_width=4",
    "--set",
    "depth=3",
    "--set",
    "train.batch_size=8",
    "--image-size",
    "32",
    "--device",
    "cpu",
    "--epochs",
    "1",
    "--quiet",
]
SPACE = "model.steps: {{low: 1, high: 2}}\n{extra}\n"


def _data_variants(root: Path) -> None:
    good = write_synthetic(root / "good", 6, 32, seed=1)
    for name in ("nomasks", "wrongsize", "garbage"):
        shutil.copytree(good, root / name)
    shutil.rmtree(root / "nomasks" / "masks")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(sorted((root / "wrongsize" / "masks").iterdir())[0])
    sorted((root / "garbage" / "images").iterdir())[0].write_bytes(b"not a png at all")
    (root / "empty" / "images").mkdir(parents=True)
    (root / "empty" / "masks").mkdir()


def _checkpoints(root: Path, run: Path) -> None:
    ckpt = torch.load(run / "best.pt", weights_only=True)
    from plsearch.config.presets import preset_config

    torch.save({**ckpt, "model_config": preset_config("plnet", base_width=4).to_dict()}, root / "other.pt")
    torch.save(torch.nn.Conv2d(1, 1, 3).state_dict(), root / "plain.pt")
    torch.save({"format": "plsearch-checkpoint-v1", "code": torch.nn.ReLU()}, root / "pickled.pt")
    for name, damage in (
        ("trunc_run", lambda p: p.write_bytes(p.read_bytes()[:2000])),
        ("pickled_run", lambda p: shutil.copy(root / "pickled.pt", p)),
    ):
        shutil.copytree(run, root / name)
        damage(root / name / "last.pt")


def _spaces(root: Path) -> None:
    texts = {
        "syntax": "model.steps: {low: 1, high: 4\n",
        "unknown_key": SPACE.format(extra="model.wings: 3"),
        "empty_range": "model.steps: {low: 2, high: 2}\n",
        "objective": SPACE.format(extra="objectives: [val_dice, flops]"),
        "sampler": SPACE.format(extra="sampler: annealing"),
        "other_objectives": Path(TINY).read_text().replace("[val_dice, params]", "[val_dice]"),
    }
    for name, text in texts.items():
        (root / f"{name}.yaml").write_text(text)
    (root / "model_bad.yaml").write_text("steps: 2\nwings: 3\n")
    (root / "model_syntax.yaml").write_text("steps: [2,\n")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Data variants, a training run and damaged checkpoints, a finished search (SQLite) and one (journal)."""
    root = tmp_path_factory.mktemp("bad")
    torch.set_num_threads(1)
    _data_variants(root)
    assert train_main([*TRAIN, "--data", str(root / "good"), "--out", str(root / "run")]) == 0
    _checkpoints(root, root / "run")
    _spaces(root)
    assert search_main(["--space", TINY, "--out", str(root / "study"), *SEARCH]) == 0
    assert (
        search_main(
            [
                "--space",
                TINY,
                "--out",
                str(root / "jstudy"),
                "--storage",
                str(root / "jstudy" / "study.journal"),
                *SEARCH,
            ]
        )
        == 0
    )
    (root / "afile").write_text("not a folder")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


S = ["--space", TINY, "--out", "{m}/study", *SEARCH]
J = ["--space", TINY, "--out", "{m}/jstudy", "--storage", "{m}/jstudy/study.journal", *SEARCH]
CASES = [  # (cli, argv, what the line names, the stored thing that must not change)
    ("search", [*S, "--data", "{m}/empty"], "holds no image files", "study"),
    ("search", [*S, "--data", "{m}/nomasks"], "no masks/ folder", "study"),
    ("search", [*S, "--data", "{m}/wrongsize"], "differ in size", "study"),
    ("search", [*J, "--data", "{m}/garbage"], "cannot read image", "jstudy"),
    ("search", ["--space", "{m}/syntax.yaml", "--out", "{m}/study"], "YAML syntax error", "study"),
    ("search", ["--space", "{m}/unknown_key.yaml", "--out", "{m}/study"], "unknown config path 'model.wings'", "study"),
    ("search", ["--space", "{m}/empty_range.yaml", "--out", "{m}/study"], "empty range", "study"),
    ("search", ["--space", "{m}/objective.yaml", "--out", "{m}/study"], "unknown metric 'flops'", "study"),
    ("search", ["--space", "{m}/sampler.yaml", "--out", "{m}/study"], "sampler='annealing' is not known", "study"),
    (
        "search",
        ["--space", "{m}/other_objectives.yaml", "--out", "{m}/study", "--study-name", "tiny", *SEARCH],
        "optimizes",
        "study",
    ),
    ("search", [*S, "--set", "data.image_size=8", "--set", "model.depth=5"], "smaller than the total stride", "study"),
    ("search", [*S, "--device", "cuda:9"], "not available", "study"),
    ("search", [*J, "--storage", "postgresql//me:pw-123@db/x"], "not a database URL", "jstudy"),
    ("search", [*S, "--storage", "postgres://me:pw-123@127.0.0.1:1/x"], "write postgresql://", "study"),
    (
        "search",
        ["--space", TINY, "--out", "{m}/fresh", "--storage", "postgresql://nobody:pw-123@127.0.0.1:1/x"],
        "cannot connect",
        None,
    ),
    ("search", [*S, "--storage", "{m}/nowhere/study.journal"], "folder of storage file", "study"),
    (
        "search",
        [*S, "--workers", "2", "--storage", "sqlite:///{m}/study/study.db"],
        "cannot share the SQLite file",
        "study",
    ),
    ("search", [*S, "--workers", "0"], "--workers must be positive", "study"),
    ("search", [*S, "--devices", "cuda:7"], "not available", "study"),
    ("search", [*S, "--devices", "cpu,,cpu"], "empty entry", "study"),
    ("search", [*S, "--devices", "cpu", "--device", "cpu"], "--device and --devices", "study"),
    ("search", [*S, "--devices", "cpu,cpu,cpu", "--workers", "2"], "unused", "study"),
    ("search", [*S, "--heartbeat", "0"], "--heartbeat must be positive", "study"),
    ("train", [*TRAIN, "--data", "{m}/empty", "--out", "{m}/t"], "holds no image files", None),
    ("train", [*TRAIN, "--data", "{m}/wrongsize", "--out", "{m}/t"], "differ in size", None),
    ("train", [*TRAIN, "--data", "{m}/garbage", "--out", "{m}/t"], "cannot read image", None),
    ("train", [*TRAIN, "--set", "depth=5", "--image-size", "8", "--out", "{m}/t"], "total stride 16", None),
    ("train", ["--resume", "--out", "{m}/run", "--set", "model.ocs=0.5"], "would change it", "run"),
    ("train", ["--resume", "--out", "{m}/trunc_run"], "cannot be read", "trunc_run"),
    ("train", ["--resume", "--out", "{m}/pickled_run"], "pickled", "pickled_run"),
    ("evaluate", ["--checkpoint", "{m}/other.pt", "--device", "cpu"], "does not rebuild its model", None),
    ("evaluate", ["--checkpoint", "{m}/plain.pt", "--device", "cpu"], "not a plsearch checkpoint", None),
    ("evaluate", ["--checkpoint", "{m}/run/best.pt", "--device", "cuda:3"], "not available", "run"),
    (
        "evaluate",
        ["--checkpoint", "{m}/run/best.pt", "--data", "{m}/wrongsize", "--split", "all"],
        "differ in size",
        "run",
    ),
    ("evaluate", ["--checkpoint", "{m}/run/best.pt", "--batch-size", "0"], "--batch-size must be positive", "run"),
    ("predict", ["--checkpoint", "{m}/other.pt", "--input", "{m}/good", "--out", "{m}/p"], "does not rebuild", None),
    ("predict", ["--checkpoint", "{m}/pickled.pt", "--input", "{m}/good", "--out", "{m}/p"], "pickled", None),
    (
        "predict",
        ["--checkpoint", "{m}/run/best.pt", "--input", "{m}/garbage", "--out", "{m}/p"],
        "cannot read image",
        "run",
    ),
    ("predict", ["--checkpoint", "{m}/run/best.pt", "--input", "{m}/empty", "--out", "{m}/p"], "no images", "run"),
    (
        "predict",
        ["--checkpoint", "{m}/run/best.pt", "--input", "{m}/good", "--out", "{m}/p", "--image-size", "2"],
        "total stride",
        "run",
    ),
    (
        "predict",
        ["--checkpoint", "{m}/run/best.pt", "--input", "{m}/good", "--out", "{m}/p", "--device", "cuda:2"],
        "not available",
        "run",
    ),
    ("predict", ["--checkpoint", "{m}/run/best.pt", "--input", "{m}/good", "--out", "{m}/afile"], "is a file", "run"),
    ("profile", ["--config", "{m}/model_syntax.yaml"], "not valid YAML", None),
    ("profile", ["--config", "{m}/model_bad.yaml"], "unknown key wings", None),
    ("profile", ["--config", "{m}"], "is not a file", None),
    ("profile", ["--input-size", "x"], "invalid int value", None),
    ("profile", ["--batch-size", "0"], "--batch-size must be positive", None),
    ("report", ["--storage", "postgresql://nobody:pw-123@127.0.0.1:1/x"], "cannot connect", None),
    ("report", ["--storage", "{m}/none.journal"], "does not exist", None),
    ("report", ["--storage", "sqlite:///{m}/none.db"], "does not exist", None),
    ("report", ["--storage", "{m}/jstudy/study.journal", "--study", "nope"], "choose one of tiny", "jstudy"),
]


@pytest.mark.parametrize("cli, argv, needle, keep", CASES, ids=[f"{c[0]}-{c[2][:28]}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_damages_nothing(cli, argv, needle, keep, made, capsys):
    before = _snapshot(made / keep) if keep else None
    t0 = time.monotonic()
    code = MAINS[cli]([a.format(m=made) for a in argv])
    took = time.monotonic() - t0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert ";" in lines[0], f"the line names no fix: {lines[0]}"
    assert "Traceback" not in out + err and "pw-123" not in out + err
    assert took < 15, f"{cli} took {took:.1f}s to fail"  # an unreachable database fails fast
    if keep:
        assert _snapshot(made / keep) == before, f"{keep} changed"
    for never in ("none.journal", "none.db", "nowhere", "fresh", "t"):  # failed commands create no folder either
        assert not (made / never).exists()
