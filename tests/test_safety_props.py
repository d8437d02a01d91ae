"""Property-based: generated configs, ``--set`` strings, space files and folder contents either run or are
rejected with one ``error:`` line and exit 2 (a ``ValueError`` naming the problem, in the library), and
nothing outside ``--out`` changes (inputs hashed before and after). CLIs are called in-process; training is
replaced by a sentinel once the CLI has accepted its input, so each example costs milliseconds."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "search_spaces" / "tiny.yaml"
# PLSEARCH_PROPS_MAX=500 python3 -m pytest tests/test_safety_props.py: a longer local run
SETTINGS = settings(
    max_examples=int(os.environ.get("PLSEARCH_PROPS_MAX", 15)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

PATHS = [
    "model.ocs",
    "model.steps",
    "model.stages",
    "model.depth",
    "model.base_width",
    "model.norm_momentum",
    "model.block",
    "model.plan",
    "model.bsc",
    "model.fsc",
    "model.stem",
    "model.num_classes",
    "model.iterations",
    "data.image_size",
    "data.val_fraction",
    "data.test_fraction",
    "data.seed",
    "train.lr",
    "train.epochs",
    "train.rotation_deg",
    "train.seed",
    "train.batch_size",
    "train.shift",
    "ocs",
    "seed",
    "nope.x",
    "model",
    "model.nope",
    "",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "nan",
            ".nan",
            "inf",
            "-inf",
            ".inf",
            "1e400",
            "-1",
            "0",
            "1e-3",
            "2**32",
            "true",
            "null",
            "",
            "[1, 2]",
            "[true, false, true, true]",
            "{a: 1}",
            "plconv",
            "residual",
            "bionet",
            "&a [*a]",
            "'quoted'",
            "0x10",
            "1_000",
            "8",
            "32",
            "0.5",
            "4294967296",
            "-0.0",
            "~",
            "[",
            "'",
        ]
    ),
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="abc01.-e:[]{}&*!'\" ", max_size=8),
)
SET_ITEMS = st.lists(
    st.builds(
        lambda k, v, sep: f"{k}{sep}{v}", st.sampled_from(PATHS), VALUES, st.sampled_from(["=", "=", "=", ":", " = "])
    ),
    max_size=4,
)


def _hash_tree(*roots: Path, skip: Path | None = None) -> dict[str, str]:
    out = {}
    for root in roots:
        for f in sorted(root.rglob("*")):
            if f.is_file() and not (skip and (f == skip or skip in f.parents)):
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _one_error_line(err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


class _ReachedTraining(BaseException):
    """Raised in place of ``fit``: the CLI accepted its input (BaseException: run_cli does not map it)."""


def _call(main, argv) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except _ReachedTraining:
            code = None
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- configs and --set strings
@SETTINGS
@given(SET_ITEMS)
def test_set_strings_resolve_or_raise_one_value_error(items):
    from plsearch.config.gate import parse_sets, resolve
    from plsearch.config.schema import RunConfig

    try:
        cfg = resolve(RunConfig(), parse_sets(items))
    except ValueError as e:
        msg = str(e)
        assert msg and "\n" not in msg.strip() and "Traceback" not in msg
        return
    assert cfg.train.lr > 0 and 0 <= cfg.model.norm_momentum <= 1 and np.isfinite(cfg.model.ocs)


MODEL_DICTS = st.fixed_dictionaries(
    {},
    optional={
        "ocs": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3)),
        "steps": st.integers(-2, 10),
        "stages": st.integers(0, 7),
        "depth": st.integers(1, 9),
        "stage_step": st.integers(0, 3),
        "base_width": st.integers(-1, 8),
        "stem": st.integers(-1, 9),
        "plan": st.sampled_from(["table1", "bionet", "x"]),
        "ipl": st.sampled_from(["progressive", "stacked", "recurrent"]),
        "iterations": st.integers(0, 3),
        "bsc": st.one_of(st.booleans(), st.lists(st.booleans(), max_size=6)),
        "fsc": st.booleans(),
        "transition": st.sampled_from(["conv", "none"]),
        "integrate": st.booleans(),
        "block": st.sampled_from(["plconv", "convbnrelu", "residual", "nope"]),
        "spatial_dims": st.sampled_from([2, 3, 4]),
        "norm_momentum": st.floats(allow_nan=True, allow_infinity=True),
        "in_channels": st.integers(0, 4),
    },
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(MODEL_DICTS, st.integers(1, 300))
def test_generated_model_configs_build_and_cost_or_raise_config_error(data, size):
    from plsearch.config.schema import ConfigError, ModelConfig
    from plsearch.graph.memory import activation_bytes
    from plsearch.graph.wiring import build_wiring, estimate

    try:
        cfg = ModelConfig.from_dict(data)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    build_wiring(cfg)
    size = max(size, cfg.total_stride()) if cfg.spatial_dims == 2 else cfg.total_stride()
    assert estimate(cfg, size).params > 0
    assert activation_bytes(cfg, size) > 0


# ----------------------------------------------------------------------------- the train CLI, in-process
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from plsearch.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("props") / "D", 8, 32, seed=3)


@pytest.fixture(scope="module")
def no_training():
    import plsearch.train.fit

    def fit(*a, **k):
        raise _ReachedTraining

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plsearch.train.fit, "fit", fit)
        yield


@SETTINGS
@given(
    SET_ITEMS,
    st.sampled_from(
        [
            [],
            ["--epochs", "nan"],
            ["--image-size", "-32"],
            ["--image-size", "100000"],
            ["--epochs", "0"],
            ["--image-size", "33"],
            ["--device", "cuda:7"],
        ]
    ),
)
def test_train_cli_runs_or_refuses_with_one_line_and_touches_no_input(data_dir, no_training, items, flags):
    from plsearch.cli.train import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        before = _hash_tree(data_dir)
        argv = [
            "--data",
            str(data_dir),
            "--model",
            "unet",
            "--set",
            "base_width=4",
            "--set",
            "depth=3",
            "--image-size",
            "32",
            "--device",
            "cpu",
            *flags,
            "--out",
            str(out),
        ]
        for item in items:
            argv += ["--set", item]
        code, _, err = _call(main, argv)
        assert code is None or (code == 2 and _one_error_line(err)), (argv, code, err)
        assert _hash_tree(data_dir) == before
        assert code is None or not (out / "config.yaml").exists()  # a refusal writes nothing


# ----------------------------------------------------------------------------- space files
SPACE_KEYS = st.sampled_from(
    [
        "model.steps",
        "model.ocs",
        "train.lr",
        "data.image_size",
        "fidelity",
        "objectives",
        "constraints",
        "sampler",
        "seed",
        "n_trials",
        "timeout",
        "pruning",
        "name",
        "references",
        "model.nope",
        "train.weight_decay",
        "imports",
    ]
)
SPACE_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["tpe", "val_dice", "macs", "plnet", "../x", "a/b", "..", "/etc", "x" * 300]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["low", "high", "step", "log", "value", "choices", "name", "params", "enabled"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=8,
)


@SETTINGS
@given(st.dictionaries(SPACE_KEYS, SPACE_VALUES, max_size=5), st.integers(0, 3))
def test_space_files_load_or_raise_one_line(spaces_tmp, extra, alias_depth):
    from plsearch.search.space import load_space

    text = TINY.read_text().replace("model.stem: 1", "")
    text += yaml.safe_dump(extra, default_flow_style=True) if extra else ""
    if alias_depth:  # nested aliases, growing 10x per level
        lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
        lines += [f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]" for i in range(1, alias_depth + 3)]
        text = "\n".join(lines) + "\n" + text
    p = spaces_tmp / "space.yaml"
    p.write_text(text)
    before = p.read_bytes()
    try:
        space = load_space(p)
    except ValueError as e:
        assert str(e) and "\n" not in str(e).strip()
        assert p.read_bytes() == before
        return
    assert alias_depth == 0  # an alias bomb is never accepted
    assert "/" not in space.name and ".." not in space.name


@pytest.fixture(scope="module")
def spaces_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spaces")


# ----------------------------------------------------------------------------- folder contents (predict)
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from plsearch.config.presets import preset_config
    from plsearch.config.schema import DataConfig, RunConfig
    from plsearch.nn.checkpoint import save_checkpoint
    from plsearch.nn.model import PLNet

    torch.manual_seed(0)
    cfg = preset_config("unet", base_width=2, depth=3)
    model = PLNet.from_config(cfg)
    run = RunConfig(model=cfg, data=DataConfig(image_size=16))
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "best.pt",
        model.state_dict(),
        model_config=cfg.to_dict(),
        run_config=run.to_dict(),
    )


FILES = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "A", "a_png", "c.d", " e"]),
        st.sampled_from([".png", ".jpg", ".PNG", ".tif", ".bmp", ".txt", ""]),
        st.sampled_from(["rgb", "grey", "garbage", "empty", "tiny"]),
    ),
    max_size=6,
)


def _write_image(path: Path, kind: str, rng: np.random.Generator) -> None:
    from PIL import Image

    if kind == "garbage":
        path.write_bytes(b"not an image " + rng.bytes(16))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        shape = {"rgb": (20, 28, 3), "grey": (24, 18), "tiny": (1, 1)}[kind]
        img = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8))
        fmt = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".bmp": "BMP"}.get(path.suffix.lower(), "PNG")
        img.save(path, format=fmt)


@SETTINGS
@given(FILES, st.sampled_from(["inside", "same", "beside", "holds_user_file", "parent"]))
def test_predict_writes_one_mask_per_image_or_refuses_and_never_touches_inputs(checkpoint, files, where):
    from plsearch.cli.predict import main

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = root / "in" / "images"
        images.mkdir(parents=True)
        for stem, ext, kind in files:
            _write_image(images / f"{stem}{ext}", kind, rng)
        out = {
            "inside": images / "pred",
            "same": images,
            "beside": root / "pred",
            "parent": root / "in",
            "holds_user_file": root / "mine",
        }[where]
        if where == "holds_user_file":
            out.mkdir()
            (out / "a.png").write_bytes(b"the user's own")
        guarded = [root / "in"]  # and, below, the user's own file in --out: never touched
        before = _hash_tree(*guarded, skip=out if where == "parent" else None)
        code, stdout, err = _call(
            main, ["--checkpoint", str(checkpoint), "--input", str(root / "in"), "--out", str(out), "--device", "cpu"]
        )
        after = _hash_tree(*guarded, skip=out if where == "parent" else None)
        if where == "parent":  # masks may go next to images/, never into it
            after = {k: v for k, v in after.items() if Path(k).parent != root / "in"}
            before = {k: v for k, v in before.items() if Path(k).parent != root / "in"}
        assert after == before, (where, files, code, err)
        if where == "holds_user_file":
            assert (out / "a.png").read_bytes() == b"the user's own", (files, code, err)
        assert code in (0, 2), err
        if code == 2:
            assert _one_error_line(err), err
            return
        masks = [p for p in out.iterdir() if p.suffix == ".png" and p.is_file()]
        n = int(stdout.split("wrote ")[1].split()[0])
        assert n == len(masks) - (1 if where == "holds_user_file" else 0) or where == "parent"
        # success into a folder that holds a user's file only when no mask takes that file's name
        assert where in ("beside", "parent") or (where == "holds_user_file" and "a" not in {f[0] for f in files})


# ----------------------------------------------------------------------------- folder contents (train --data)
PAIRS = st.lists(
    st.tuples(
        st.sampled_from(["p0", "p1", "p2", "p3", "P0", "p0 copy"]),
        st.sampled_from([".png", ".jpg", ".tif", ".txt"]),
        st.sampled_from(["rgb", "grey", "garbage", "empty", "tiny"]),
        st.sampled_from(["mask", "values", "wrongsize", "missing", "garbage"]),
    ),
    max_size=6,
)


def _write_mask(path: Path, kind: str, shape: tuple[int, int], rng: np.random.Generator) -> None:
    from PIL import Image

    if kind == "missing":
        return
    if kind == "garbage":
        path.write_bytes(b"\x00garbage")
        return
    h, w = (shape[0] + 3, shape[1]) if kind == "wrongsize" else shape
    values = (0, 255) if kind == "mask" else (0, 7, 200)
    Image.fromarray(rng.choice(np.array(values, dtype=np.uint8), size=(h, w))).save(path)


@SETTINGS
@given(PAIRS, st.booleans())
def test_train_on_generated_folders_runs_or_refuses_and_never_touches_them(no_training, pairs, with_csv):
    from plsearch.cli.train import main

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "D"
        (d / "images").mkdir(parents=True)
        (d / "masks").mkdir()
        for stem, ext, img, mask in pairs:
            _write_image(d / "images" / f"{stem}{ext}", img, rng)
            shape = {"rgb": (20, 28), "grey": (24, 18), "tiny": (1, 1)}.get(img, (8, 8))
            _write_mask(d / "masks" / f"{stem}.png", mask, shape, rng)
        if with_csv:
            (d / "split.csv").write_text(
                "id,split\n" + "".join(f"{s},{'train' if i % 2 else 'val'}\n" for i, (s, *_) in enumerate(pairs))
            )
        before = _hash_tree(d)
        out = Path(tmp) / "run"
        code, _, err = _call(
            main,
            [
                "--data",
                str(d),
                "--model",
                "unet",
                "--set",
                "base_width=4",
                "--set",
                "depth=3",
                "--image-size",
                "32",
                "--device",
                "cpu",
                "--out",
                str(out),
            ],
        )
        assert code is None or (code == 2 and _one_error_line(err)), (pairs, code, err)
        assert _hash_tree(d) == before
