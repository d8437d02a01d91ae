"""Issue 27, bullet 2: a resume continues the same measurement or refuses. Whatever decides the data, the split,
the fidelity or the model is part of what ``train --resume`` and a rerun search must match; a flag the resume
would ignore (``--model``) is refused, not dropped. Each refusal is one ``error:`` line naming the field (old
and new value) and the fix, exit 2, and the run or results folder is byte-identical afterwards."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from plsearch.cli.search import main as search_main
from plsearch.cli.train import main as train_main
from plsearch.data.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")
TRAIN = ["--model", "unet", "--set", "base_width=4", "--set", "depth=3", "--set", "train.batch_size=8"]
TRAIN += ["--set", "train.max_steps_per_epoch=1", "--image-size", "32", "--device", "cpu", "--quiet"]
SEARCH = ["--no-references", "--no-plots", "--n-trials", "1", "--workers", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _tree(root: Path) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()}


def _refused(capsys, main, argv, folder: Path, *match: str) -> str:
    before = _tree(folder)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for m in match:
        assert m.lower() in lines[0].lower(), lines[0]
    assert _tree(folder) == before
    return lines[0]


# ----------------------------------------------------------------------------- train --resume
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A one-epoch run on a small PNG folder (with a split CSV beside it for the tests to point at)."""
    root = tmp_path_factory.mktemp("resume")
    data = Path(write_synthetic(root / "D", 8, 32, seed=1))
    (root / "split.csv").write_text("id,split\n")
    run = root / "run"
    assert train_main(["--data", str(data), *TRAIN, "--epochs", "1", "--out", str(run)]) == 0
    return data, run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    r = tmp_path / "run"
    shutil.copytree(trained[1], r)
    return r


@pytest.mark.parametrize(
    "flags, field, old, new",
    [
        (["--set", "data.seed=5"], "data.seed", "0", "5"),
        (["--set", "data.val_fraction=0.3"], "data.val_fraction", "0.1", "0.3"),
        (["--set", "data.test_fraction=0.3"], "data.test_fraction", "0.2", "0.3"),
        (["--set", "data.split_csv={split}"], "data.split_csv", "''", "split.csv"),
        (["--image-size", "64"], "data.image_size", "32", "64"),
        (["--set", "data.grey_world=true"], "data.grey_world", "False", "True"),
    ],
)
def test_train_resume_that_changes_the_data_or_split_is_refused(trained, run, capsys, flags, field, old, new):
    split = trained[0].parent / "split.csv"
    argv = [*TRAIN, *[f.format(split=split) for f in flags], "--epochs", "2", "--out", run, "--resume"]
    line = _refused(capsys, train_main, argv, run, field, old, new, "another --out")
    flag = "--image-size" if flags[0] == "--image-size" else f"--set {field}"
    assert f"drop {flag}" in line


def test_train_resume_with_another_model_is_refused(run, capsys):
    argv = [*TRAIN, "--model", "plnet", "--epochs", "2", "--out", run, "--resume"]
    _refused(capsys, train_main, argv, run, "--model plnet", "unet", "drop --model")


def test_train_resume_with_a_trial_is_refused(run, capsys):
    argv = ["--trial", "results/tiny:0", "--epochs", "2", "--out", run, "--resume", "--quiet"]
    _refused(capsys, train_main, argv, run, "--trial", "another --out")


def test_train_resume_that_changes_nothing_continues(trained, run, capsys):
    # the same command line with --resume (the model named again, the same split): one more epoch
    assert train_main([str(a) for a in ["--data", trained[0], *TRAIN, "--epochs", "2", "--out", run, "--resume"]]) == 0
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert train_main([str(a) for a in ["--epochs", "3", "--out", run, "--resume", "--quiet"]]) == 0  # no flags
    assert len((run / "log.jsonl").read_text().splitlines()) == 3


# ----------------------------------------------------------------------------- search, rerun
@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search_resume")
    data = Path(write_synthetic(root / "D", 8, 32, seed=1))
    write_synthetic(root / "OTHER", 8, 32, seed=2)
    out = root / "res"
    assert search_main(["--space", TINY, *SEARCH, "--data", str(data), "--out", str(out)]) == 0
    return data, out


@pytest.fixture
def results(searched, tmp_path) -> Path:
    out = tmp_path / "res"
    shutil.copytree(searched[1], out)
    return out


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--data", "{other}"], "data.root"),
        (["--data", "{data}", "--set", "data.image_size=64"], "data.image_size"),
        (["--data", "{data}", "--set", "train.epochs=3"], "train.epochs"),
        (["--data", "{data}", "--set", "data.seed=4"], "data.seed"),
        ([], "data.root"),  # the synthetic set instead of the folder
    ],
)
def test_search_resumed_on_other_data_or_fidelity_is_refused(searched, results, capsys, flags, field):
    data = searched[0]
    other = data.parent / "OTHER"
    argv = ["--space", TINY, *SEARCH, "--n-trials", "2", *[f.format(data=data, other=other) for f in flags]]
    line = _refused(capsys, search_main, [*argv, "--out", results], results, field, "another --out")
    assert ("drop --data" if field == "data.root" else f"drop --set {field}") in line


def test_search_resumed_as_it_started_continues(searched, results, capsys):
    argv = ["--space", TINY, *SEARCH, "--n-trials", "2", "--data", str(searched[0]), "--out", str(results)]
    assert search_main(argv) == 0
    assert "2 finished trial(s), 1 this run" in capsys.readouterr().out
