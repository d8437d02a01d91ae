"""CPU proxies of the CUDA paths: bf16 autocast, channels-last, compile, several workers per GPU.

No GPU has run this code yet, so each CUDA-only branch is exercised here on the CPU through the
same functions (``plsearch.nn.speed.cuda_paths_on("cpu")`` makes ``fit()`` and evaluation take the
CUDA branch: bf16 autocast and channels-last). Each check has a ``gpu``-marked twin that runs it
on CUDA (``benchmarks/gpu_check.sh`` runs those first).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import plsearch.train.fit
import plsearch.train.metrics
from plsearch import create_model
from plsearch.config.schema import TrainConfig
from plsearch.data.synthetic import make_synthetic
from plsearch.nn.speed import autocast, cuda_paths_on, memory_format
from plsearch.train.fit import fit
from plsearch.train.losses import deep_supervision_loss

CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
)
DEVICES = ["cpu", CUDA]
# Every conv entry point a forward can take: the modules' and the blocks' functional fast paths
# (``blocks.base.fast_conv`` / ``fast_conv_transpose`` call these directly, so module hooks miss them).
CONV_FUNCTIONS = frozenset(
    {"conv2d", "conv3d", "conv_transpose2d", "conv_transpose3d", "thnn_conv2d", "slow_conv_transpose2d"}
)


def cuda_branch(device: str):
    """The CUDA branch of fit()/evaluation on ``device``: forced on a CPU, the default on CUDA."""
    return cuda_paths_on("cpu") if device == "cpu" else cuda_paths_on("cuda")


def is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)


class ConvLayouts(TorchFunctionMode):
    """While active: for every conv call, whether its input is channels-last, keyed by whether
    ``model`` was training (``seen[True]``: the train step, ``seen[False]``: evaluation)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen: dict[bool, list[bool]] = {True: [], False: []}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in CONV_FUNCTIONS:
            self.seen[self.model.training].append(is_channels_last(args[0]))
        return func(*args, **(kwargs or {}))


class Probe:
    """Records what the training step, the loss, the model and the metrics see (dtypes, layouts)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, model: nn.Module) -> None:
        self.stage_dtypes: list[torch.dtype] = []  # train-mode model outputs, as the loss gets them
        self.loss_dtypes: list[torch.dtype] = []
        self.eval_dtypes: list[torch.dtype] = []  # eval-mode model outputs
        self.metric_dtypes: list[torch.dtype] = []  # logits the metrics threshold
        self.convs = ConvLayouts(model)  # enter it around the run: convs' input layouts
        loss_fn, labels_fn = plsearch.train.fit.deep_supervision_loss, plsearch.train.metrics.logits_to_labels

        def loss(outputs, target, **kw):
            outs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
            self.stage_dtypes += [o.dtype for o in outs]
            value = loss_fn(outputs, target, **kw)
            self.loss_dtypes.append(value.dtype)
            return value

        def labels(logits):
            self.metric_dtypes.append(logits.dtype)
            return labels_fn(logits)

        monkeypatch.setattr(plsearch.train.fit, "deep_supervision_loss", loss)
        monkeypatch.setattr(plsearch.train.metrics, "logits_to_labels", labels)
        model.register_forward_hook(lambda m, i, out: None if m.training else self.eval_dtypes.append(out.dtype))


@pytest.fixture(scope="module")
def nuclei():
    return make_synthetic(8, 32, seed=0), make_synthetic(8, 32, seed=1)


@pytest.fixture(scope="module")
def pretrained(nuclei):
    """A tiny PL-Net trained in fp32 until it segments (val Dice ~0.8): far from the 0.5 threshold,
    so a few more steps compare precisions, not the noise of an untrained net."""
    torch.set_num_threads(1)  # module fixtures run before conftest's one-thread fixture
    torch.manual_seed(0)
    model = create_model("plnet", base_width=4, depth=3)
    with torch.random.fork_rng():
        fit(
            model,
            nuclei[0],
            nuclei[0],
            TrainConfig(epochs=20, lr=2e-2, batch_size=8, augment=False, patience=0, device="cpu"),
        )
    return model


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_train_step_and_evaluation_keep_loss_and_metrics_in_float32(device, nuclei, pretrained, monkeypatch):
    train, val = nuclei
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=8, augment=False, patience=0, device=device)
    ref = fit(copy.deepcopy(pretrained), train, val, TrainConfig(**{**cfg.__dict__, "amp": False}))
    model = copy.deepcopy(pretrained)
    probe = Probe(monkeypatch, model)
    with cuda_branch(device), probe.convs:
        result = fit(model, train, val, cfg)
    assert set(probe.stage_dtypes) == {torch.bfloat16}  # autocast reached the train step ...
    assert set(probe.loss_dtypes) == {torch.float32}  # ... and the Dice loss reduces in float32
    assert set(probe.eval_dtypes) == {torch.bfloat16}  # evaluation runs under autocast too ...
    assert set(probe.metric_dtypes) == {torch.float32}  # ... and thresholds float32 logits
    ref_dice, dice = ref.history[-1]["val_dice"], result.history[-1]["val_dice"]
    assert ref_dice > 0.5  # a net that segments: the comparison means something
    assert abs(dice - ref_dice) < 0.02, (ref_dice, dice)
    # channels-last end to end: every conv of the training step and of the evaluation sees NHWC input
    seen = probe.convs.seen
    n_convs = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())
    assert len(seen[True]) >= n_convs and all(seen[True]), seen[True]  # each conv at least once per step
    assert seen[False] and all(seen[False]), seen[False]
    assert is_channels_last(next(p for p in model.parameters() if p.dim() == 4))


def test_cpu_defaults_stay_fp32_and_contiguous():
    assert memory_format("cpu", 4) is None and memory_format("cuda", 4) == torch.channels_last
    assert memory_format("cuda", 5) == torch.channels_last_3d and memory_format("cuda", 3) is None
    with autocast("cpu"):
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32
    with cuda_paths_on("cpu"), autocast("cpu"):
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.bfloat16
        assert memory_format("cpu", 4) == torch.channels_last
    with cuda_paths_on("cpu", amp=None):
        with autocast("cpu"):
            assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32
        with autocast("cpu", enabled=False), cuda_paths_on("cpu"):
            assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32  # amp=False wins
    assert memory_format("cpu", 4) is None  # restored on the way out


def _step3d(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str, plain: bool = False
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """fit()'s train step on a volume: layout from ``memory_format``, autocast, deep-supervision loss
    (``plain``: NCDHW in float32, the reference)."""
    layout = None if plain else memory_format(device, x.dim())
    if layout is not None:
        model.to(memory_format=layout)
        x = x.contiguous(memory_format=layout)
    with autocast(device, enabled=not plain):
        outs = model(x)
    loss = deep_supervision_loss(outs, y)
    loss.backward()
    return outs, loss


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_3d_train_step_and_inference(device, monkeypatch):
    torch.manual_seed(0)
    base = create_model("plnet", spatial_dims=3, base_width=4, depth=3, stages=1).to(device)
    x = torch.randn(2, 3, 16, 16, 16, device=device)
    y = (torch.rand(2, 16, 16, 16, device=device) > 0.7).long()
    ref_outs, ref_loss = _step3d(copy.deepcopy(base), x, y, device, plain=True)
    # fp32 (on a CPU; CPU bf16 conv3d returns NCDHW, a torch limitation) or bf16 (CUDA): NDHWC throughout
    model = copy.deepcopy(base)
    convs = ConvLayouts(model)
    with convs, cuda_paths_on(device, amp=None if device == "cpu" else torch.bfloat16):
        outs, loss = _step3d(model, x, y, device)
        assert memory_format(device, 5) == torch.channels_last_3d
        model.eval()
        with torch.no_grad(), autocast(device):
            fused = model(x.contiguous(memory_format=torch.channels_last_3d))
    seen = convs.seen
    assert seen[True] and all(seen[True]) and seen[False] and all(seen[False]), seen
    assert is_channels_last(fused) and loss.dtype == torch.float32
    tol = 1e-3 if device == "cpu" else 5e-2
    assert abs(loss.item() - ref_loss.item()) < tol * max(1.0, abs(ref_loss.item()))
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    # bf16 autocast on a volume: float32 loss, finite gradients, close to fp32
    model = copy.deepcopy(base)
    with cuda_paths_on(device):
        outs, loss = _step3d(model, x, y, device)
    assert outs[0].dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert abs(loss.item() - ref_loss.item()) < 5e-2 * max(1.0, abs(ref_loss.item()))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_train_step_matches_eager(device, monkeypatch):
    """fit(compile=True) on the CUDA branch: one graph, no graph breaks, the eager run's losses.

    On the CPU with dynamo + AOTAutograd (backend ``aot_eager``): the same capture and autograd
    split as inductor without its C++ code generation (minutes on a 2-core CPU); on CUDA, inductor."""
    from torch._dynamo.utils import counters

    from plsearch.nn.speed import compile_available

    if not compile_available(device):
        pytest.skip("torch.compile unavailable here")
    if device == "cpu":
        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    data = make_synthetic(8, 16, seed=3)
    train, val = data.subset(range(4)), data.subset(range(4, 8))
    name, kw = ("unet", {"depth": 2}) if device == "cpu" else ("plnet", {"depth": 3, "stages": 1})
    cfg = TrainConfig(epochs=2, lr=1e-2, batch_size=4, augment=False, patience=0, device=device)
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = create_model(name, base_width=4, **kw)
        torch._dynamo.reset()
        counters.clear()
        with cuda_branch(device):
            runs[compiled] = fit(model, train, val, TrainConfig(**{**cfg.__dict__, "compile": compiled}))
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]
    for eager, comp in zip(runs[False].history, runs[True].history):
        assert comp["train_loss"] == pytest.approx(eager["train_loss"], rel=2e-2)


# -- several workers, several GPUs: placement and memory caps, with the device layer faked

TINY = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml")


@pytest.mark.parametrize(
    "flags, placed",
    [
        (["--devices", "cuda:0,cuda:1"], [("cuda:0", None), ("cuda:1", None)]),  # one worker per device
        (["--workers", "3", "--devices", "cuda:0"], [("cuda:0", 0.3167)] * 3),  # N workers on one device
        (["--workers", "4", "--devices", "cuda:0,cuda:1"], [("cuda:0", 0.475), ("cuda:1", 0.475)] * 2),
        (["--workers", "3", "--devices", "cuda:0,cuda:1"], [("cuda:0", 0.475), ("cuda:1", None), ("cuda:0", 0.475)]),
        (["--workers", "2", "--device", "cuda"], [("cuda", 0.475)] * 2),
        (["--workers", "2", "--device", "cpu"], [("cpu", None)] * 2),
    ],
)
def test_workers_get_the_devices_and_memory_caps_the_flags_say(flags, placed, tmp_path, monkeypatch, capsys):
    import plsearch.cli
    import plsearch.cli.search as search_cli
    import plsearch.search.workers as workers
    from plsearch.cli.search import main

    seen: dict = {}

    def fake_launch(commands, env, on_line, **kw):  # no processes: record what each would get
        seen.update(commands=commands, envs=[env] * len(commands) if isinstance(env, dict) else list(env))
        return [0] * len(commands)

    monkeypatch.setattr(plsearch.cli, "parse_device", lambda name: name)  # two fake GPUs "exist"
    monkeypatch.setattr(search_cli, "_cuda", lambda: True)
    monkeypatch.setattr(workers, "launch", fake_launch)
    monkeypatch.delenv(workers.MEMORY_FRACTION_ENV, raising=False)
    assert (
        main(
            [
                "--space",
                TINY,
                "--out",
                str(tmp_path / "o"),
                "--storage",
                str(tmp_path / "j.journal"),
                "--no-plots",
                "--no-references",
                "--n-trials",
                "2",
                *flags,
            ]
        )
        == 0
    )
    got = [
        (c[c.index("--device") + 1], e.get(workers.MEMORY_FRACTION_ENV)) for c, e in zip(seen["commands"], seen["envs"])
    ]
    assert got == [(d, None if cap is None else str(cap)) for d, cap in placed]
    assert all(e["PLSEARCH_STORAGE"] == str(tmp_path / "j.journal") for e in seen["envs"])
    if any(cap for _, cap in placed):
        assert "CUDA memory caps" in capsys.readouterr().out


def test_no_gpu_no_memory_cap_line(tmp_path, monkeypatch, capsys):
    """Two CPU workers on device auto get the caps (in case it is a GPU) but no line about a shared GPU."""
    import plsearch.cli.search as search_cli
    import plsearch.search.workers as workers

    monkeypatch.setattr(search_cli, "_cuda", lambda: False)
    monkeypatch.setattr(workers, "launch", lambda commands, env, on_line, **kw: [0] * len(commands))
    args = ["--space", TINY, "--out", str(tmp_path / "o"), "--no-plots", "--no-references", "--n-trials", "2"]
    assert search_cli.main([*args, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "starting 2 workers" in out and "CUDA memory caps" not in out


@pytest.mark.parametrize(
    "device, fraction, applied",
    [
        ("cuda:1", "0.475", [(0.475, 1)]),
        ("cuda", "0.3167", [(0.3167, 0)]),
        ("cpu", "0.475", []),
        ("cuda:0", None, []),
    ],
)
def test_a_worker_caps_its_gpu_memory_at_start(device, fraction, applied, tmp_path, monkeypatch):
    import plsearch.cli
    import plsearch.search.runner as runner
    from plsearch.cli.search import main
    from plsearch.search.workers import MEMORY_FRACTION_ENV

    calls: list = []
    monkeypatch.setattr(plsearch.cli, "parse_device", lambda name: torch.device(name))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, i: calls.append((f, i)))
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: calls and None)  # the cap comes before the study
    monkeypatch.setattr(runner, "run_trials", lambda *a, **k: None)
    if fraction is None:
        monkeypatch.delenv(MEMORY_FRACTION_ENV, raising=False)
    else:
        monkeypatch.setenv(MEMORY_FRACTION_ENV, fraction)
    assert (
        main(
            [
                "--space",
                TINY,
                "--out",
                str(tmp_path),
                "--storage",
                str(tmp_path / "j.journal"),
                "--worker-index",
                "0",
                "--device",
                device,
            ]
        )
        == 0
    )
    assert calls == applied


def test_a_bad_memory_fraction_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from plsearch.cli.search import main
    from plsearch.search.workers import MEMORY_FRACTION_ENV

    for bad, says in (("half", "not a number"), ("1.5", "outside (0, 1]")):
        monkeypatch.setenv(MEMORY_FRACTION_ENV, bad)
        monkeypatch.setattr("plsearch.cli.parse_device", lambda name: torch.device("cuda:0"))
        assert main(["--space", TINY, "--out", str(tmp_path), "--worker-index", "0", "--device", "cuda:0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]
