"""Issue 11 at the CLIs, beyond its examples: outputs over inputs, other studies' folders, resumes that would
change a run, sizes that cannot fit, seeds and numbers that are not numbers. Each bad input gets one
``error:`` line and exit 2, and every input is byte-identical afterwards (``benchmarks/safety_inputs.py``
drives the same kinds as subprocesses and records the before/after table)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from plsearch.cli.evaluate import main as evaluate_main
from plsearch.cli.predict import main as predict_main
from plsearch.cli.profile import main as profile_main
from plsearch.cli.report import main as report_main
from plsearch.cli.search import main as search_main
from plsearch.cli.train import main as train_main
from plsearch.data.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")
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
SEARCH = ["--no-references", "--no-plots", "--n-trials", "1"]


def _tree(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        out.update({str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()})
        out[f"{root}?exists"] = str(root.exists())
    return out


def _refused(capsys, main, argv, *guarded: Path, match: str = "") -> str:
    before = _tree(*guarded)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert match.lower() in lines[0].lower(), lines[0]
    assert _tree(*guarded) == before
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run folder as ``train`` leaves it (config.yaml, last.pt with a training state, best.pt) and its data;
    made without training (the refusals under test all happen before a step would run)."""
    from plsearch.config.presets import preset_config
    from plsearch.config.schema import DataConfig, RunConfig, TrainConfig, to_yaml
    from plsearch.nn.checkpoint import TRAIN_STATE_KEYS, save_checkpoint
    from plsearch.nn.model import PLNet

    root = tmp_path_factory.mktemp("safety_cli")
    data = write_synthetic(root / "D", 8, 32, seed=1)
    cfg = RunConfig(
        model=preset_config("unet", base_width=4, depth=3, in_channels=3),
        data=DataConfig(root=str(data), image_size=32),
        train=TrainConfig(epochs=1, batch_size=8),
    )
    torch.manual_seed(0)
    model = PLNet.from_config(cfg.model)
    state = dict.fromkeys(TRAIN_STATE_KEYS, 0) | {"history": [], "optimizer": {}, "rng": {}}
    run = root / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(cfg))
    for name in ("best.pt", "last.pt"):
        save_checkpoint(
            run / name,
            model.state_dict(),
            model_config=cfg.model.to_dict(),
            run_config=cfg.to_dict(),
            train_state=state,
        )
    return run


@pytest.fixture
def work(tmp_path, run) -> Path:
    shutil.copytree(run.parent / "D", tmp_path / "D")
    return tmp_path


# ----------------------------------------------------------------------------- outputs over inputs
@pytest.mark.parametrize(
    "inp, out", [("D/images", "D/images"), ("D", "D/masks"), ("D/images", "D/images/pred"), ("D", "D")]
)
def test_predict_never_writes_into_its_input(work, run, capsys, inp, out):
    _refused(
        capsys,
        predict_main,
        ["--checkpoint", run / "best.pt", "--input", work / inp, "--out", work / out, "--device", "cpu"],
        work / "D",
        match="input",
    )


def test_predict_one_mask_per_input_even_with_one_stem(work, run, capsys):
    src = sorted((work / "D" / "images").iterdir())[0]
    (work / "in").mkdir()
    shutil.copy(src, work / "in" / "a.png")
    from PIL import Image

    Image.open(src).convert("RGB").save(work / "in" / "a.jpg")
    assert (
        predict_main(
            [
                "--checkpoint",
                str(run / "best.pt"),
                "--input",
                str(work / "in"),
                "--out",
                str(work / "P"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "wrote 2 masks" in capsys.readouterr().out
    assert sorted(p.name for p in (work / "P").glob("*.png")) == ["a_jpg.png", "a_png.png"]
    assert (
        predict_main(
            [
                "--checkpoint",
                str(run / "best.pt"),
                "--input",
                str(work / "in"),
                "--out",
                str(work / "P"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )  # its own masks: replaced on a rerun


def test_predict_never_writes_over_a_users_file(work, run, capsys):
    (work / "in").mkdir()
    shutil.copy(sorted((work / "D" / "images").iterdir())[0], work / "in" / "a.png")
    (work / "mine").mkdir()
    (work / "mine" / "a.png").write_bytes(b"the user's own")
    _refused(
        capsys,
        predict_main,
        ["--checkpoint", run / "best.pt", "--input", work / "in", "--out", work / "mine", "--device", "cpu"],
        work / "mine",
        work / "in",
        match="did not write",
    )


@pytest.mark.parametrize("main, extra", [(train_main, TRAIN), (evaluate_main, ["--device", "cpu"])])
def test_out_naming_an_existing_file(work, run, capsys, main, extra):
    (work / "notes.txt").write_text("precious")
    argv = [*extra, "--out", work / "notes.txt"]
    if main is evaluate_main:
        argv = ["--checkpoint", run / "best.pt", "--data", work / "D", *argv]
    _refused(capsys, main, argv, work / "notes.txt", work / "D", match="file")


def test_train_and_evaluate_never_write_into_the_data(work, run, capsys):
    _refused(capsys, train_main, ["--data", work / "D", *TRAIN, "--out", work / "D"], work / "D", match="input")
    _refused(capsys, train_main, ["--data", work / "D", *TRAIN, "--out", work / "D" / "run"], work / "D", match="input")
    _refused(
        capsys,
        evaluate_main,
        ["--checkpoint", run / "best.pt", "--data", work / "D", "--out", work / "D" / "masks", "--device", "cpu"],
        work / "D",
        match="input",
    )


# ----------------------------------------------------------------------------- results folders and names
def _study_folder(root: Path, name: str) -> Path:
    """A results folder as a search of an earlier version left it (no marker): study.db, records, Pareto files."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = root / name
    (out / "pareto").mkdir(parents=True)
    optuna.create_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}", directions=["maximize", "minimize"])
    (out / "trials.jsonl").write_text('{"number": 0}\n')
    (out / "pareto.md").write_text(f"# Pareto front of study {name}\n\n| trial |\n")
    (out / "pareto" / "trial_7.yaml").write_text("ocs: 1.0\n")
    return out


def test_another_studys_results_folder_is_refused(tmp_path, capsys):
    a = _study_folder(tmp_path, "A")
    b = _study_folder(tmp_path / "elsewhere", "B")
    capsys.readouterr()
    _refused(capsys, report_main, ["--storage", f"sqlite:///{b / 'study.db'}", "--out", a], a, b, match="study")
    _refused(capsys, search_main, ["--space", TINY, "--study", "B", "--out", a, *SEARCH], a, match="study")


@pytest.mark.parametrize("argv", [["--study", "../../x"], ["--study-name", "a/b"], ["--study", ".."]])
def test_study_names_are_names(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, search_main, ["--space", TINY, *argv, *SEARCH], tmp_path, match="name")
    assert not any(tmp_path.iterdir())


def test_a_space_files_name_is_a_name(tmp_path, capsys, monkeypatch):
    sp = tmp_path / "sp.yaml"
    sp.write_text("name: ../../escaped\n" + Path(TINY).read_text())
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    _refused(capsys, search_main, ["--space", sp, *SEARCH], tmp_path, match="name")


# ----------------------------------------------------------------------------- numbers and seeds
@pytest.mark.parametrize(
    "flag, value",
    [
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "-1"),
        ("--seed", "-1"),
        ("--seed", "4294967296"),
        ("--n-trials", "0"),
    ],
)
def test_search_flags_refused_before_any_storage_exists(tmp_path, capsys, flag, value):
    _refused(
        capsys, search_main, ["--space", TINY, "--out", tmp_path / "R", *SEARCH, flag, value], tmp_path, match=flag
    )
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--set", "train.lr=nan"], "lr"),
        (["--set", "model.norm_momentum=nan"], "norm_momentum"),
        (["--set", "data.val_fraction=.nan"], "val_fraction"),
        (["--set", "train.rotation_deg=inf"], "rotation_deg"),
        (["--set", "train.seed=-1"], "seed"),
        (["--image-size", "-32"], "image-size"),
        (["--epochs", "0"], "epochs"),
    ],
)
def test_train_numbers_refused_naming_the_field(tmp_path, capsys, argv, match):
    _refused(capsys, train_main, [*TRAIN, *argv, "--out", tmp_path / "run"], tmp_path, match=match)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- resume
def test_resume_with_a_bad_value_changes_nothing(work, run, capsys):
    r = work / "run"
    shutil.copytree(run, r)
    _refused(
        capsys, train_main, [*TRAIN, "--out", r, "--resume", "--epochs", "2", "--set", "train.lr=nan"], r, match="lr"
    )


@pytest.mark.parametrize("which", ["best.pt", "last.pt"])
def test_resume_with_a_checkpoint_of_another_model_changes_nothing(work, run, capsys, which):
    from plsearch.config.presets import preset_config

    r = work / "run"
    shutil.copytree(run, r)
    ck = torch.load(r / which, weights_only=True)
    ck["model_config"] = preset_config("plnet-small", base_width=4, depth=3).to_dict()
    torch.save(ck, r / which)
    _refused(capsys, train_main, [*TRAIN, "--out", r, "--resume", "--epochs", "2"], r, match=which)


def test_resume_on_other_data_is_refused(work, run, capsys):
    r = work / "run"
    shutil.copytree(run, r)
    other = write_synthetic(work / "OTHER", 6, 32, seed=9)
    _refused(
        capsys, train_main, ["--data", other, *TRAIN, "--out", r, "--resume", "--epochs", "2"], r, other, match="data"
    )


# ----------------------------------------------------------------------------- sizes and folders
def test_sizes_that_cannot_fit_are_refused_with_the_figure(work, run, capsys):
    line = _refused(
        capsys,
        predict_main,
        [
            "--checkpoint",
            run / "best.pt",
            "--input",
            work / "D" / "images",
            "--out",
            work / "P",
            "--image-size",
            "100000",
            "--device",
            "cpu",
        ],
        work / "D",
        match="--image-size",
    )
    assert "needs about" in line and not (work / "P").exists()
    line = _refused(
        capsys, profile_main, ["--model", "plnet", "--input-size", "60000", "--no-latency"], work, match="--input-size"
    )
    assert "needs about" in line


def test_a_data_folder_with_a_single_pair(tmp_path, capsys):
    d = write_synthetic(tmp_path / "D", 4, 32, seed=1)
    for sub in ("images", "masks"):
        for f in sorted((d / sub).iterdir())[1:]:
            f.unlink()
    _refused(capsys, train_main, ["--data", d, *TRAIN, "--out", tmp_path / "run"], d, match="validation")
    _refused(
        capsys, search_main, ["--space", TINY, "--data", d, "--out", tmp_path / "R", *SEARCH], d, match="validation"
    )
    assert not (tmp_path / "R").exists() and not (tmp_path / "run").exists()
