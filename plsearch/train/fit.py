"""Training: one loop, ``fit()``, that reads top to bottom.

Dice loss per EPL stage (deep supervision, ``plsearch.train.losses``), Adam, batched augmentation on the
device, validation Dice each epoch, early stopping, ``best.pt`` / ``last.pt`` checkpoints that
``resume=True`` continues from exactly. Run it from the shell with ``python -m plsearch.train``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from plsearch.config.gate import DeviceError
from plsearch.config.gate import check_device as resolve_device  # the one device check (plsearch.config.gate)
from plsearch.config.schema import RunConfig, TrainConfig, to_dict
from plsearch.data.augment import augment_batch
from plsearch.nn.checkpoint import CheckpointError, load_checkpoint, model_config_dict, read_checkpoint, save_checkpoint
from plsearch.nn.speed import autocast as bf16_autocast
from plsearch.nn.speed import memory_format
from plsearch.progress import progress as progress_bar
from plsearch.train.losses import active_stages, deep_supervision_loss
from plsearch.train.metrics import evaluate_model

__all__ = ["FitResult", "NonFiniteLossError", "DeviceError", "fit", "resolve_device", "load_checkpoint"]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (learning rate too high, or bad data)."""


@dataclass
class FitResult:
    """What ``fit`` returns; ``history`` holds one row per epoch (as written to ``log.jsonl``)."""

    best_val_dice: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "max_epochs"  # "early_stop" | "max_epochs" | "callback"
    seconds: float = 0.0


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


FUSED_ADAM = True  # False: Adam's per-tensor loop, as before (benchmarks/trial_cost.py times both)
FLAT_ADAM = True  # False: torch's fused Adam over the per-tensor list (the step before FlatAdam)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam on ``model``'s parameters in as few ops as the device allows.

    PL-Net's weights are many small tensors (220 in PL-Net-dagger); Adam's default CPU path runs
    about ten ops per tensor per step, its fused path still several. ``FlatAdam`` (one flat buffer,
    one fused kernel) gives the same update up to float rounding; torch's fused Adam where the
    parameters mix devices or dtypes.
    """
    params = list(model.parameters())
    fused = (
        FUSED_ADAM
        and bool(params)
        and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params)
    )
    if fused and FLAT_ADAM and len({(p.device, p.dtype) for p in params}) == 1:
        from plsearch.train.flatadam import FlatAdam

        return FlatAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def _num_stages(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "stages", None)


def _rng_state(shuffle: torch.Generator, aug: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(), "augment": aug.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], shuffle: torch.Generator, aug: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    aug.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _write_log(path: Path, rows: list[dict[str, Any]], mode: str = "a") -> None:
    with open(path, mode) as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def fit(
    model: nn.Module,
    train,
    val,
    cfg: TrainConfig,
    *,
    num_classes: int = 1,
    out_dir: str | Path | None = None,
    run_config: RunConfig | None = None,
    on_epoch_end: Callable[[int, dict], bool | None] | None = None,
    resume: bool = False,
    progress: bool = False,
) -> FitResult:
    """Train ``model`` on ``train`` (``SegmentationData``), validating on ``val`` every epoch.

    Args:
        model: any module whose train-mode forward returns per-stage logits (a list, or one
            tensor) ``(b, k, h, w)`` and whose eval-mode forward returns the fused logits.
        cfg: optimiser, epochs, early stopping (``patience`` epochs without a better val Dice;
            0 switches it off), EPL ``schedule``, augmentation, seed, device, ``amp``.
        out_dir: when given: ``log.jsonl`` (one JSON row per epoch), ``best.pt``, ``last.pt`` and
            ``curves.png``.
        run_config: stored in the checkpoints so that a run can be rebuilt.
        on_epoch_end: ``f(epoch, row)``, 1-based epoch; returning True stops training. Exceptions
            it raises (e.g. ``optuna.TrialPruned``) propagate.
        resume: continue from ``out_dir/last.pt``: weights, optimiser, epoch, best, early-stop counter
            and RNG states, so the remaining epochs repeat what an uninterrupted run would do.
        progress: an epoch and step bar on a terminal (plain periodic lines in logs), and one line
            per epoch on stderr.

    Returns:
        ``FitResult``; the model then holds the weights of the best validation epoch.

    Raises:
        NonFiniteLossError: an epoch's loss was NaN or infinite.
    """
    with _threads(cfg.num_threads):  # 0 leaves torch's default
        return _fit(
            model,
            train,
            val,
            cfg,
            num_classes=num_classes,
            out_dir=out_dir,
            run_config=run_config,
            on_epoch_end=on_epoch_end,
            resume=resume,
            progress=progress,
        )


def _fit(
    model: nn.Module,
    train,
    val,
    cfg: TrainConfig,
    *,
    num_classes: int,
    out_dir: str | Path | None,
    run_config: RunConfig | None,
    on_epoch_end: Callable[[int, dict], bool | None] | None,
    resume: bool,
    progress: bool,
) -> FitResult:
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"need training and validation images, got {len(train)} and {len(val)}; "
            "raise data.val_fraction or add images"
        )
    out = Path(out_dir) if out_dir is not None else None
    device = resolve_device(cfg.device)
    layout = memory_format(device, train.images.dim())  # NHWC / NDHWC on CUDA (tensor-core convs); None on CPU
    autocast = bf16_autocast(device, enabled=cfg.amp)  # bf16 on CUDA only
    torch.manual_seed(cfg.seed)
    model.to(device)
    if layout is not None:
        model.to(memory_format=layout)
    train, val = train.to(device), val.to(device)
    from plsearch.nn.speed import compile_model, configure_backends

    configure_backends(device)  # cudnn.benchmark + TF32 on CUDA; nothing on CPU
    net = compile_model(model) if cfg.compile else model  # shares model's weights; checkpoints save model
    optimizer = make_optimizer(model, cfg)
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)  # batch order (randperm on the CPU)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)  # augmentation parameters (CPU; applied on device)
    n_stages, fusion = _num_stages(model), getattr(getattr(model, "config", None), "fusion", "sum")
    run_dict = to_dict(run_config) if run_config is not None else None
    model_dict = model_config_dict(model)
    history: list[dict[str, Any]] = []
    start_epoch, best, best_epoch, bad_epochs = 0, -math.inf, 0, 0
    best_weights = _cpu_copy(model)

    if resume:
        if out is None or not (out / "last.pt").is_file():
            raise CheckpointError(f"nothing to resume: {out}/last.pt does not exist; run without --resume first")
        ckpt = read_checkpoint(out / "last.pt")
        ts = ckpt["train_state"]
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ts["optimizer"])
        _set_rng_state(ts["rng"], shuffle_gen, aug_gen)
        start_epoch, best, best_epoch, bad_epochs = ts["epoch"], ts["best_val_dice"], ts["best_epoch"], ts["bad_epochs"]
        history = list(ts["history"])
        best_weights = read_checkpoint(out / "best.pt")["state_dict"] if (out / "best.pt").is_file() else best_weights
        log.info("resuming %s at epoch %d (best val Dice %.4f at epoch %d)", out, start_epoch, best, best_epoch)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_log(out / "log.jsonl", history, mode="w")  # on resume: drop rows after the checkpoint

    t_start, stopped = time.perf_counter(), "max_epochs"
    show = None if progress else "off"  # a bar on a terminal, plain lines in logs (plsearch.progress)
    epochs_bar = progress_bar(total=cfg.epochs, desc="train", unit="epoch", mode=show)
    epochs_bar.update(start_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.patience and bad_epochs >= cfg.patience:
            stopped = "early_stop"
            break
        t0, cpu0 = time.perf_counter(), time.process_time()  # process CPU: the table's cost (one thread a run)
        stages = active_stages(epoch, cfg, n_stages) if n_stages else None
        if epoch > 0 and n_stages and stages != active_stages(epoch - 1, cfg, n_stages):
            bad_epochs = 0  # a stage joined (progressive schedule): give it a full patience window
        model.train()
        loss_sum, steps = torch.zeros((), device=device), 0
        drop_last = len(train) > cfg.batch_size  # no tiny last batch for BatchNorm
        n_steps = len(train) // cfg.batch_size if drop_last else math.ceil(len(train) / cfg.batch_size)
        steps_bar = progress_bar(
            total=min(n_steps, cfg.max_steps_per_epoch or n_steps),
            desc=f"epoch {epoch + 1}",
            unit="step",
            mode=show,
            leave=False,
            plain_ends=False,
        )
        for x, y, _ in train.batches(cfg.batch_size, shuffle=True, generator=shuffle_gen, drop_last=drop_last):
            if cfg.max_steps_per_epoch and steps >= cfg.max_steps_per_epoch:
                break
            if cfg.augment:
                x, y = augment_batch(
                    x, y, generator=aug_gen, rotation_deg=cfg.rotation_deg, shift=cfg.shift, flips=cfg.flips
                )
            if layout is not None:
                x = x.contiguous(memory_format=layout)
            with autocast:
                outputs = net(x)
            loss = deep_supervision_loss(outputs, y, stages=stages, loss_on_fused=cfg.loss_on_fused, fusion=fusion)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()  # no host sync per step; checked once per epoch
            steps += 1
            steps_bar.update(1)
        steps_bar.close()
        train_loss = loss_sum.item() / max(steps, 1)
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"training loss is {train_loss} in epoch {epoch + 1}; lower train.lr or check the data"
            )

        cpu1 = time.process_time()
        metrics = evaluate_model(
            model, val, num_classes=num_classes, batch_size=cfg.eval_batch_size, device=device, amp=cfg.amp
        )
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_dice": metrics["dice"],
            "val_iou": metrics["iou"],
            "stages": stages or 0,
            "steps": steps,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": cpu1 - cpu0,  # training steps only (process CPU time)
            "val_cpu_seconds": time.process_time() - cpu1,  # the validation pass
        }
        history.append(row)
        improved = row["val_dice"] > best
        if improved:
            best, best_epoch, bad_epochs = row["val_dice"], epoch + 1, 0
            best_weights = _cpu_copy(model)
        else:
            bad_epochs += 1
        if out is not None:
            _write_log(out / "log.jsonl", [row])
            state = {
                "epoch": epoch + 1,
                "best_val_dice": best,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "history": history,
            }
            if improved:
                save_checkpoint(
                    out / "best.pt",
                    best_weights,
                    model_config=model_dict,
                    run_config=run_dict,
                    train_state=copy.copy(state),
                )
            state.update(optimizer=optimizer.state_dict(), rng=_rng_state(shuffle_gen, aug_gen))
            save_checkpoint(
                out / "last.pt", model.state_dict(), model_config=model_dict, run_config=run_dict, train_state=state
            )
        epochs_bar.write(
            f"epoch {epoch + 1}/{cfg.epochs}  loss {train_loss:.4f}  val Dice {row['val_dice']:.4f}"
            f"  best {best:.4f} (epoch {best_epoch})  {row['seconds']:.1f}s"
        )
        epochs_bar.set_postfix(val_dice=row["val_dice"], best=best)
        epochs_bar.update(1)
        if on_epoch_end is not None and on_epoch_end(epoch + 1, row):
            stopped = "callback"
            break

    epochs_bar.close()
    model.load_state_dict(best_weights)
    if out is not None and history:
        from plsearch.plots.training import plot_curves

        plot_curves(history, out / "curves.png")
    return FitResult(
        best_val_dice=best,
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
        stopped=stopped,
        seconds=time.perf_counter() - t_start,
    )
