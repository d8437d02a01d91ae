"""CLIs end to end (train -> evaluate -> predict on a tiny synthetic run) and their error lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from plsearch.cli.evaluate import main as evaluate_main
from plsearch.cli.predict import main as predict_main
from plsearch.cli.train import main as train_main
from plsearch.cli.train import qualify_key
from plsearch.config.schema import ConfigError
from plsearch.data.synthetic import write_synthetic

TINY = [
    "--model",
    "unet",
    "--set",
    "base_width=4",
    "--set",
    "depth=4",
    "--set",
    "data.synthetic_count=16",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.num_threads=1",
    "--image-size",
    "32",
    "--device",
    "cpu",
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    assert train_main([*TINY, "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_run(run, capsys):
    for name in ("config.yaml", "log.jsonl", "best.pt", "last.pt", "curves.png", "metrics.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["epochs_run"] == 2 and 0.0 <= summary["test"]["dice"] <= 1.0
    assert "base_width: 4" in (run / "config.yaml").read_text()


def test_resume_extends_run(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert train_main(["--resume", "--epochs", "3", "--out", str(copy), "--quiet"]) == 0
    assert len((copy / "log.jsonl").read_text().splitlines()) == 3
    assert "dice" in capsys.readouterr().out


def test_evaluate_and_predict(run, tmp_path, capsys):
    assert evaluate_main(["--checkpoint", str(run / "best.pt"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "dice" in out and "global" in out
    result = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert result["split"] == "test" and len(result["per_image_dice"]) == result["images"]
    assert (run / "eval_test" / "best_worst.png").is_file()

    folder = write_synthetic(tmp_path / "imgs", 3, 40, seed=5)
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(run / "best.pt"),
                "--data",
                str(folder),
                "--split",
                "all",
                "--out",
                str(tmp_path / "ev"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["images"] == 3

    assert (
        predict_main(
            [
                "--checkpoint",
                str(run / "best.pt"),
                "--input",
                str(folder),
                "--out",
                str(tmp_path / "masks"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert len(masks) == 3
    for m in masks:
        a = np.asarray(Image.open(m))
        assert a.shape == (40, 40) and set(np.unique(a)) <= {0, 255}  # the input's own size
    single = sorted((folder / "images").iterdir())[0]
    assert (
        predict_main(
            [
                "--checkpoint",
                str(run / "best.pt"),
                "--input",
                str(single),
                "--out",
                str(tmp_path / "one"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (tmp_path / "one" / single.name).is_file()


def test_qualify_key():
    assert qualify_key("ocs") == "model.ocs" and qualify_key("epochs") == "train.epochs"
    assert qualify_key("data.seed") == "data.seed"
    with pytest.raises(ConfigError, match="data.seed or train.seed"):
        qualify_key("seed")


def _bad_files(tmp_path, run):
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes((run / "best.pt").read_bytes()[:2000])
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "plsearch-checkpoint-v1", "model": torch.nn.ReLU()}, pickled)
    return trunc, pickled


@pytest.mark.parametrize(
    "which, argv, expect",
    [
        ("train", ["--data", "{tmp}/nowhere", "--out", "{tmp}/r"], "does not exist"),
        ("train", ["--set", "model.nope=1", "--out", "{tmp}/r"], "unknown key"),
        ("train", ["--set", "nope=1", "--out", "{tmp}/r"], "unknown key"),
        ("train", ["--set", "model.ocs=abc", "--out", "{tmp}/r"], "ocs"),
        ("train", ["--device", "tpu:3", "--out", "{tmp}/r"], "device"),
        ("train", ["--device", "cuda:7", "--out", "{tmp}/r"], "device"),
        ("train", ["--epochs", "x", "--out", "{tmp}/r"], "--epochs"),
        ("train", ["--resume", "--out", "{tmp}/r"], "nothing to resume"),
        ("train", ["--out", "{run}"], "already holds"),
        ("evaluate", ["--checkpoint", "{tmp}/missing.pt"], "does not exist"),
        ("evaluate", ["--checkpoint", "{tmp}/trunc.pt"], "cannot be read"),
        ("evaluate", ["--checkpoint", "{tmp}/pickled.pt"], "pickled"),
        ("evaluate", ["--checkpoint", "{run}/best.pt", "--data", "{tmp}/nowhere"], "does not exist"),
        (
            "predict",
            ["--checkpoint", "{run}/best.pt", "--input", "{tmp}/nowhere", "--out", "{tmp}/p"],
            "does not exist",
        ),
        ("predict", ["--checkpoint", "{tmp}/trunc.pt", "--input", "{tmp}/x.png", "--out", "{tmp}/p"], "cannot be read"),
    ],
)
def test_cli_errors_are_one_line(which, argv, expect, run, tmp_path, capsys):
    _bad_files(tmp_path, run)
    (tmp_path / "x.png").write_bytes(b"")  # gives predict an input so the checkpoint is what fails
    main = {"train": train_main, "evaluate": evaluate_main, "predict": predict_main}[which]
    code = main([a.format(tmp=tmp_path, run=run) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert ";" in err[0], err  # the problem; the fix
    assert expect in err[0] and not err[0].removeprefix("error: ").startswith("error"), err
