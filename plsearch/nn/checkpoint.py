"""Checkpoints as plain data: they load with ``torch.load(weights_only=True)`` and rebuild their model.

A checkpoint is a dict of tensors and YAML-like values only::

    {"format": "plsearch-checkpoint-v1",
     "model_config": dict | None,      # ModelConfig.to_dict(): rebuilds the model
     "run_config": dict | None,        # RunConfig.to_dict(): data and training settings
     "state_dict": {name: tensor},
     "train_state": {...},             # epoch, best, early-stop counter, history, optimizer, RNG states
     "versions": {"torch": str, "plsearch": str}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from plsearch.outputs import atomic_file

FORMAT = "plsearch-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a plsearch checkpoint."""


def model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    """``model.config.to_dict()`` when the model carries a config (PLNet does), else ``None``."""
    cfg = getattr(model, "config", None)
    return cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else None


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    *,
    model_config: dict[str, Any] | None,
    run_config: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file, then rename) so a crash never leaves half a file."""
    import plsearch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": FORMAT,
        "model_config": model_config,
        "run_config": run_config,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "train_state": train_state or {},
        "versions": {"torch": str(torch.__version__), "plsearch": str(plsearch.__version__)},
    }
    with atomic_file(path) as tmp:  # a full disk: DiskFullError, the old file kept, no .tmp left
        torch.save(ckpt, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``, tensors on CPU).

    Raises:
        CheckpointError: one line naming the file, the problem and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the best.pt or last.pt of a training run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError... for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Unsupported global" in str(e):
            why = "it holds pickled Python objects, which are not loaded for safety"
        else:
            why = f"it cannot be read ({type(e).__name__}: {first[:120]})"
        raise CheckpointError(
            f"checkpoint {path} is not usable: {why}; pass a checkpoint written by plsearch's fit"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a plsearch checkpoint (no format={FORMAT!r}); pass a checkpoint written by plsearch's fit"
        )
    return ckpt


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint holds, in eval mode on ``device``.

    Returns:
        ``(model, checkpoint_dict)``.
    """
    from plsearch.nn.model import PLNet

    ckpt = read_checkpoint(path)
    if not ckpt.get("model_config"):
        raise CheckpointError(f"checkpoint {path} has no model_config; load its state_dict into your own model")
    try:
        model = PLNet.from_config(ckpt["model_config"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise CheckpointError(
            f"checkpoint {path} does not rebuild its model ({first}); retrain with this plsearch version"
        ) from None
    return model.to(device).eval(), ckpt


TRAIN_STATE_KEYS = ("epoch", "best_val_dice", "best_epoch", "bad_epochs", "history", "optimizer", "rng")


def _first_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            return f"{k}: {b.get(k)!r} there, {a.get(k)!r} in the run's config"
    return "the same fields"


def check_resumable(
    run_dir: str | Path, model_config: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, Any]:
    """Check a run folder before a resume writes anything; returns its ``last.pt`` dict.

    ``last.pt`` must hold a training state, and ``last.pt`` and ``best.pt`` (when present) must be
    checkpoints of the run's model: the same ``model_config`` and, given ``shapes`` (the state_dict
    shapes of the model the run builds), the same tensors. Raises ``CheckpointError`` (one line, the fix).
    """
    run = Path(run_dir)
    fix = "restore the run's own checkpoint, or train a new run with another --out"
    last = read_checkpoint(run / "last.pt")
    ts = last.get("train_state") or {}
    missing = [k for k in TRAIN_STATE_KEYS if k not in ts]
    if missing:
        raise CheckpointError(
            f"{run / 'last.pt'} holds no training state ({missing[0]} is missing), so it cannot be resumed; {fix}"
        )
    for name in ("last.pt", "best.pt"):
        path = run / name
        if name == "best.pt" and not path.exists():
            continue
        ckpt = last if name == "last.pt" else read_checkpoint(path)
        mc = dict(ckpt.get("model_config") or {})
        if mc != dict(model_config):
            raise CheckpointError(
                f"{path} is a checkpoint of another model ({_first_difference(dict(model_config), mc)}); {fix}"
            )
        if shapes is not None:
            got = {k: tuple(v.shape) for k, v in (ckpt.get("state_dict") or {}).items()}
            if got != {k: tuple(v) for k, v in shapes.items()}:
                odd = sorted(set(got) ^ set(shapes)) or sorted(k for k in got if got[k] != tuple(shapes[k]))
                raise CheckpointError(f"{path} does not fit the run's model (tensor {odd[0]} differs); {fix}")
    return last
