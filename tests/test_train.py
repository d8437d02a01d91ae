"""fit(): learning, early stopping, callbacks, checkpoints (weights_only) and exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from plsearch import create_model
from plsearch.config.schema import TrainConfig
from plsearch.data.synthetic import make_synthetic
from plsearch.nn.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from plsearch.train.fit import DeviceError, NonFiniteLossError, fit, resolve_device

FAST = dict(batch_size=4, augment=False, patience=0, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convs: one thread is ~50x faster than two when other processes share the cores.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    d = make_synthetic(12, 32, seed=3)
    return d.subset(range(8)), d.subset(range(8, 12))


def tiny_unet(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("unet", base_width=4, depth=4)


def test_overfits_one_batch():
    batch = make_synthetic(4, 32, seed=0)
    model = tiny_unet()
    cfg = TrainConfig(epochs=50, lr=2e-2, **FAST)
    result = fit(model, batch, batch, cfg)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_val_dice > 0.9
    assert result.stopped == "max_epochs" and result.epochs_run == 50


def test_plnet_deep_supervision_reduces_loss(data):
    train, val = data
    torch.manual_seed(0)
    model = create_model("plnet", base_width=4, depth=4)
    cfg = TrainConfig(epochs=4, lr=1e-2, **{**FAST, "augment": True})
    result = fit(model, train, val, cfg)
    losses = [r["train_loss"] for r in result.history]
    assert losses[0] > 1.0  # two stages: sum of two Dice losses
    assert losses[-1] < losses[0]
    assert all(r["stages"] == 2 and r["steps"] == 2 for r in result.history)


def test_progressive_schedule_trains_stage_one_first(data):
    train, val = data
    torch.manual_seed(0)
    model = create_model("plnet", base_width=4, depth=4)
    cfg = TrainConfig(epochs=2, schedule="progressive", progressive_epochs=1, max_steps_per_epoch=1, **FAST)
    result = fit(model, train, val, cfg)
    assert [r["stages"] for r in result.history] == [1, 2]
    assert [r["steps"] for r in result.history] == [1, 1]


def test_early_stop_and_callback(data):
    train, val = data
    cfg = TrainConfig(epochs=10, lr=1e-12, batch_size=8, augment=False, patience=2, device="cpu")
    result = fit(tiny_unet(), train, val, cfg)  # lr ~0: val Dice never improves after epoch 1
    assert result.stopped == "early_stop" and result.epochs_run == 3 and result.best_epoch == 1
    seen = []
    result = fit(tiny_unet(), train, val, cfg, on_epoch_end=lambda e, row: seen.append(row) or e == 2)
    assert result.stopped == "callback" and result.epochs_run == 2 and len(seen) == 2
    assert set(seen[0]) >= {"epoch", "train_loss", "val_dice", "val_iou", "seconds"}

    def boom(epoch, row):
        raise KeyError("pruned")

    with pytest.raises(KeyError):
        fit(tiny_unet(), train, val, cfg, on_epoch_end=boom)


class _NaN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return [x[:, :1] * self.w * float("nan")]


def test_non_finite_loss_raises(data):
    train, val = data
    with pytest.raises(NonFiniteLossError, match="lower train.lr"):
        fit(_NaN(), train, val, TrainConfig(epochs=1, **FAST))


def test_checkpoints_round_trip_and_hold_best(data, tmp_path):
    train, val = data
    model = tiny_unet()
    result = fit(model, train, val, TrainConfig(epochs=3, lr=1e-2, **FAST), out_dir=tmp_path)
    for name in ("best.pt", "last.pt", "log.jsonl", "curves.png"):
        assert (tmp_path / name).is_file()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    raw = torch.load(tmp_path / "last.pt", weights_only=True)  # plain data only
    assert raw["format"] == "plsearch-checkpoint-v1" and raw["train_state"]["epoch"] == 3
    assert "optimizer" in raw["train_state"] and "rng" in raw["train_state"]
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["train_state"]["epoch"] == result.best_epoch
    # after fit the model holds the best weights; the checkpoint rebuilds the same model
    loaded, _ = load_checkpoint(tmp_path / "best.pt")
    model.eval()
    x = train.batch(torch.arange(2))[0]
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_resume_repeats_uninterrupted_run(data, tmp_path):
    train, val = data
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=4, augment=True, patience=0, device="cpu")
    full = fit(tiny_unet(), train, val, cfg, out_dir=tmp_path / "full")
    fit(tiny_unet(), train, val, TrainConfig(**{**cfg.__dict__, "epochs": 2}), out_dir=tmp_path / "part")
    resumed = fit(tiny_unet(seed=9), train, val, cfg, out_dir=tmp_path / "part", resume=True)
    assert resumed.epochs_run == 3 and [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(full.history, resumed.history):
        assert a["train_loss"] == b["train_loss"] and a["val_dice"] == b["val_dice"]
    last_full = read_checkpoint(tmp_path / "full" / "last.pt")["state_dict"]
    last_part = read_checkpoint(tmp_path / "part" / "last.pt")["state_dict"]
    assert all(torch.equal(last_full[k], last_part[k]) for k in last_full)
    assert len((tmp_path / "part" / "log.jsonl").read_text().splitlines()) == 3


def test_resume_without_checkpoint_and_bad_files(data, tmp_path):
    train, val = data
    with pytest.raises(CheckpointError, match="nothing to resume"):
        fit(tiny_unet(), train, val, TrainConfig(epochs=1, **FAST), out_dir=tmp_path, resume=True)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "plsearch-checkpoint-v1", "bad": nn.ReLU()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        read_checkpoint(tmp_path / "pickled.pt")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(DeviceError):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            resolve_device("cuda")


def test_multiclass_with_fused_loss(data):
    train, val = data
    torch.manual_seed(0)
    model = create_model("plnet", base_width=4, depth=4, num_classes=3)
    cfg = TrainConfig(epochs=1, loss_on_fused=True, max_steps_per_epoch=1, **FAST)
    result = fit(model, train, val, cfg, num_classes=3)
    assert result.epochs_run == 1 and 0.0 <= result.history[0]["val_dice"] <= 1.0
    from plsearch.train.metrics import evaluate_model

    metrics = evaluate_model(model, val, num_classes=3)
    assert {"dice_class1", "dice_class2", "iou_class2", "global_dice"} <= set(metrics)
