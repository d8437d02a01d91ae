"""Issue 27: one rule for outputs, every command that writes (``plsearch.outputs.check_out``).

A destination (``--out``, ``--artifacts``, ``--storage``, ``--table``'s folder) equal to, inside, or (for
writers that make folders of their own) holding an input is refused before anything is written: one
``error:`` line, exit 2, the data byte-identical and no new file. Inputs: a data folder (from ``--data``,
``--input``, ``--set data.root``, a space's or a checkpoint's ``data.root``), an input file's folder, a
checkpoint's run folder. Paths are drawn as equal, child, parent and symlinked (to the data or into it).
Every refusal happens before a step of training, so the whole file takes seconds.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plsearch.outputs import OutputError, check_out, named_data

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "search_spaces" / "tiny.yaml"
QUICK = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SUB = st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}", fullmatch=True)  # a relative path inside a folder


# ----------------------------------------------------------------------------- a tiny world, made once
class World:
    """The data folder D (4 pairs of 16x16 PNGs), a run folder with best.pt trained on D (made without
    training), a finished search whose trials trained on D, and a space that fixes ``data.root: D``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = self._data(root / "D")
        self.run = self._run(root / "run")
        self.study = self._study(root / "study")
        self.space = root / "space_on_D.yaml"
        self.space.write_text(TINY.read_text() + f"\ndata.root: {self.data}\n")
        self.scratch = root / "scratch"
        self.scratch.mkdir()

    @staticmethod
    def _data(d: Path) -> Path:
        from PIL import Image

        rng = np.random.default_rng(0)
        (d / "images").mkdir(parents=True)
        (d / "masks").mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(d / "images" / f"im{i}.png")
            Image.fromarray((rng.random((16, 16)) > 0.5).astype(np.uint8) * 255).save(d / "masks" / f"im{i}.png")
        return d

    def _run(self, run: Path) -> Path:
        import torch

        from plsearch.config.presets import preset_config
        from plsearch.config.schema import DataConfig, RunConfig, to_yaml
        from plsearch.nn.checkpoint import save_checkpoint
        from plsearch.nn.model import PLNet

        cfg = RunConfig(
            model=preset_config("unet", base_width=4, depth=3, in_channels=3),
            data=DataConfig(root=str(self.data), image_size=16),
        )
        torch.manual_seed(0)
        model = PLNet.from_config(cfg.model)
        run.mkdir()
        (run / "config.yaml").write_text(to_yaml(cfg))
        save_checkpoint(run / "best.pt", model.state_dict(), model_config=cfg.model.to_dict(), run_config=cfg.to_dict())
        return run

    def _study(self, folder: Path) -> Path:
        """A finished search in folder/study.db (no training): trials 0 and 1, both trained on D."""
        import optuna
        import yaml

        from plsearch.config.schema import DataConfig, RunConfig
        from plsearch.search.study import SPACE_ATTR

        folder.mkdir()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}", directions=["maximize", "minimize"]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is "experimental"
            study.set_metric_names(["val_dice", "params"])
        study.set_user_attr(SPACE_ATTR, yaml.safe_load(TINY.read_text()))
        cfg = RunConfig(data=DataConfig(root=str(self.data))).to_dict()
        for n in range(2):
            attrs = {
                "feasible": True,
                "config": cfg,
                "profile": {"params": 10 + n, "macs": 5},
                "metrics": {"val_dice": 0.5},
                "fail_reason": None,
            }
            study.add_trial(optuna.trial.create_trial(values=[0.5 - n / 10, 10 + n], user_attrs=attrs))
        return folder

    def guarded(self) -> dict[str, str]:
        """Every file (sha256) and folder under D, the run and the study."""
        state = {}
        for top in (self.data, self.run, self.study):
            for p in sorted(top.rglob("*")):
                state[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        return state


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("paths"))


def place(rel: str, target: Path, scratch: Path, sub: str) -> Path:
    """A destination in relation ``rel`` to ``target``: the folder itself, a child, its parent, a symlink to
    it (or to a child of it, or into it), made in ``scratch`` (outside the target)."""
    if rel == "equal":
        return target
    if rel == "inside":
        return target / sub
    if rel == "parent":
        return target.parent
    link = scratch / "link"
    if rel == "link_to":
        link.symlink_to(target, target_is_directory=True)
        return link
    if rel == "link_to_inside":
        link.symlink_to(target, target_is_directory=True)
        return link / sub
    if rel == "link_into":
        link.symlink_to(next(p for p in sorted(target.iterdir()) if p.is_dir()), target_is_directory=True)
        return link
    raise AssertionError(rel)


IN = ("equal", "inside", "link_to", "link_to_inside", "link_into")  # refused for every writer
HOLD = (*IN, "parent")  # refused too for writers that make folders of their own in their destination


def refused(capsys, world: World, main: Callable[[list[str]], int], argv: list[Any]) -> str:
    capsys.readouterr()
    before = world.guarded()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert world.guarded() == before, "an input changed, or a file appeared in it"
    return lines[0]


def scratch_dir(world: World) -> Path:
    return Path(tempfile.mkdtemp(dir=world.scratch))


# ----------------------------------------------------------------------------- every writer, at its CLI
SEARCH = ["--no-references", "--no-plots", "--n-trials", "1"]
TRAIN = ["--model", "unet", "--set", "base_width=4", "--set", "depth=3", "--image-size", "16"]
TRAIN += ["--device", "cpu", "--epochs", "1", "--quiet"]


def search_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    """--out / --artifacts / --storage against D given by --data or by the space's data.root."""
    space, data = (TINY, ["--data", w.data]) if via % 2 == 0 else (w.space, [])
    if via // 2 == 0:
        return ["--space", space, *data, *SEARCH, "--out", place(rel, w.data, s, sub)]
    if via // 2 == 1:
        return ["--space", space, *data, *SEARCH, "--out", s / "R", "--artifacts", place(rel, w.data, s, sub)]
    folder = place("inside" if rel == "parent" else rel, w.data, s, sub)  # a storage file beside the data is fine
    return ["--space", space, *data, *SEARCH, "--out", s / "R", "--storage", folder / "s.journal"]


def train_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    data = ["--data", w.data] if via % 2 == 0 else ["--set", f"data.root={w.data}"]
    return [*data, *TRAIN, "--out", place(rel, w.data, s, sub)]


def predict_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    ck = ["--checkpoint", w.run / "best.pt", "--device", "cpu"]
    if via % 3 == 0:  # a data folder: nothing inside it
        return [*ck, "--input", w.data, "--out", place(rel, w.data, s, sub)]
    folder_rel = "equal" if rel in ("equal", "inside", "parent") else "link_to"
    if via % 3 == 1:  # one image: not beside it (x.png next to x.jpg)
        image = w.data / "images" / "im0.png"
        return [*ck, "--input", image, "--out", place(folder_rel, image.parent, s, sub)]
    return [*ck, "--input", w.data / "images", "--out", place(folder_rel, w.run, s, sub)]  # not the run folder


def evaluate_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    ck = ["--checkpoint", w.run / "best.pt", "--device", "cpu"]
    if via % 3 == 0:  # the run's own data (no --data): read from the checkpoint
        return [*ck, "--out", place(rel, w.data, s, sub)]
    if via % 3 == 1:
        return [*ck, "--data", w.data, "--out", place(rel, w.data, s, sub)]
    return [*ck, "--data", w.data, "--out", place("equal" if rel in ("equal", "inside") else "link_to", w.run, s, sub)]


def export_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    if via % 3 == 0:
        out = w.run / "best.pt"  # the checkpoint itself
    elif via % 3 == 1:
        out = w.run / "model.pt"  # a file straight into the run folder train owns
    else:
        out = place("link_to", w.run, s, sub) / "model.pt"
    return ["--checkpoint", w.run / "best.pt", "--format", "torchscript", "--out", out]


def confirm_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    """--artifacts against the data every trial of the study trained on (or --set data.root)."""
    base = ["--out", w.study, "--no-references", "--seeds", "1"]
    if via % 2 == 1:
        base += ["--set", f"data.root={w.data}"]
    return [*base, "--artifacts", place(rel, w.data, s, sub)]


def fidelity_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    space, data = (TINY, ["--data", w.data]) if via % 2 == 0 else (w.space, [])
    base = ["--space", space, *data, "--high", "train.epochs=3", "--configs", "1"]
    if via // 2 == 0:
        return [*base, "--out", place(rel, w.data, s, sub)]
    folder = place("inside" if rel == "parent" else rel, w.data, s, sub)  # a storage file beside the data is fine
    return [*base, "--out", s / "F", "--storage", folder / "runs.journal"]


def table_case(w: World, s: Path, rel: str, sub: str, via: int) -> list[Any]:
    space, data = (TINY, ["--data", w.data]) if via % 2 == 0 else (w.space, [])
    base = ["--space", space, *data, "--sampled", "1", "--seeds", "1"]
    if via // 2 == 0:
        return [*base, "--table", s / "t.jsonl.gz", "--out", place(rel, w.data, s, sub)]
    folder = place("inside" if rel == "parent" else rel, w.data, s, sub)  # the table's folder may hold the data
    return [*base, "--out", s / "T", "--table", folder / "t.jsonl.gz"]


def _main(verb: str) -> Callable[[list[str]], int]:
    import importlib

    return importlib.import_module(f"plsearch.cli.{verb}").main


CASES = {
    "search": (search_case, HOLD, 6),
    "train": (train_case, IN, 2),
    "predict": (predict_case, IN, 3),
    "evaluate": (evaluate_case, IN, 3),
    "export": (export_case, IN, 3),
    "confirm": (confirm_case, HOLD, 2),
    "fidelity": (fidelity_case, HOLD, 4),
    "table": (table_case, HOLD, 4),
}


@pytest.mark.parametrize("verb", list(CASES))
@QUICK
@given(data=st.data(), sub=SUB)
def test_every_writer_refuses_a_destination_in_or_over_its_inputs(world, capsys, verb, data, sub):
    case, relations, vias = CASES[verb]
    rel = data.draw(st.sampled_from(relations), label="relation")
    via = data.draw(st.integers(0, vias - 1), label="via")
    s = scratch_dir(world)
    try:
        line = refused(capsys, world, _main(verb), case(world, s, rel, sub, via))
    finally:
        shutil.rmtree(s)
    assert ";" in line  # it names the fix
    assert any(w in line for w in ("input", "checkpoint", "owns")), line


def test_the_reported_cases(world, capsys):
    """The user test of issue 27: search into the data's images/ or the data folder, predict beside its image."""
    s = scratch_dir(world)
    line = refused(
        capsys, world, _main("search"), ["--space", TINY, "--data", world.data, *SEARCH, "--out", world.data]
    )
    assert "never writes into data it reads" in line
    refused(
        capsys, world, _main("search"), ["--space", TINY, "--data", world.data, *SEARCH, "--out", world.data / "images"]
    )
    image = world.data / "images" / "im1.png"
    argv = ["--checkpoint", world.run / "best.pt", "--input", image, "--out", world.data / "images", "--device", "cpu"]
    assert "holds the input" in refused(capsys, world, _main("predict"), argv)
    assert not list(s.iterdir())
    shutil.rmtree(s)


# ----------------------------------------------------------------------------- the rule itself
@QUICK
@given(rel=st.sampled_from(HOLD), sub=SUB, holding_ok=st.booleans(), as_file=st.booleans())
def test_check_out_relations(world, rel, sub, holding_ok, as_file):
    """Equal, inside and symlinked are refused; the parent only where the writer makes folders of its own;
    for an input file, its folder is refused (outputs beside it) but a subfolder beside it is not."""
    assume(not (as_file and rel == "link_into"))  # the images folder has no subfolder to link into
    s = scratch_dir(world)
    try:
        if as_file:
            image = world.data / "images" / "im0.png"
            dest = place(rel, image.parent, s, sub)
            bad = rel in ("equal", "link_to")
            inputs: list[Any] = [image]
        else:
            dest = place(rel, world.data, s, sub)
            bad = rel != "parent" or not holding_ok
            inputs = [world.data]
        if bad:
            with pytest.raises(OutputError):
                check_out(dest, inputs=inputs, contains_inputs=holding_ok)
        else:
            assert check_out(dest, inputs=inputs, contains_inputs=holding_ok) == dest.resolve()
    finally:
        shutil.rmtree(s)


def test_a_destination_next_to_the_data_is_accepted(world):
    beside = world.root / "results" / "study"
    for holding_ok in (True, False):
        assert check_out(beside, inputs=[world.data], contains_inputs=holding_ok) == beside.resolve()
    assert check_out(world.root / "D2", inputs=[world.data], contains_inputs=False)  # a name that starts like D's
    image = world.data / "images" / "im0.png"
    s = scratch_dir(world)
    shutil.copy(image, s / "x.png")
    assert check_out(s / "masks", inputs=[s / "x.png"])  # predict --input x.png --out masks/: a new folder beside
    shutil.rmtree(s)


def test_a_run_folder_is_its_runs_a_subfolder_of_it_is_fine(world):
    ck = world.run / "best.pt"
    assert check_out(world.run / "eval_test", inputs=[world.data], owned=[ck])  # evaluate's default
    with pytest.raises(OutputError, match="owns"):
        check_out(world.run, owned=[ck])
    with pytest.raises(OutputError, match="owns"):
        check_out(world.run / "model.onnx", owned=[ck], need_dir=False)
    with pytest.raises(OutputError, match="owns"):
        check_out(world.run, owned=[world.run])  # the run folder given as the checkpoint
    s = scratch_dir(world)
    shutil.copy(ck, s / "model.pt")  # a checkpoint in a folder no command owns: export beside it is fine
    assert check_out(s / "model.onnx", owned=[s / "model.pt"], need_dir=False)
    with pytest.raises(OutputError, match="itself"):
        check_out(s / "model.pt", owned=[s / "model.pt"], need_dir=False)
    shutil.rmtree(s)


def test_named_data_finds_every_source(world):
    from plsearch.config.schema import DataConfig, RunConfig
    from plsearch.search.space import load_space

    d = str(world.data)
    cfg = RunConfig(data=DataConfig(root=d))
    assert named_data(d, {"data.root": d}, cfg, cfg.data, cfg.to_dict(), load_space(world.space)) == [d] * 6
    assert named_data(None, "", {"train.epochs": 3}, RunConfig()) == []
