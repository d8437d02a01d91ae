"""The process's data cache: trials of one fidelity share one loaded copy of the splits."""

from __future__ import annotations

from typing import Any

from plsearch.config.schema import DataConfig

_DATA: dict[tuple[DataConfig, int], dict[str, Any]] = {}


def load_data(cfg: DataConfig, num_classes: int = 1) -> dict[str, Any]:
    """``plsearch.data.dataset.load_splits`` cached per process: trials of one fidelity share one copy."""
    key = (cfg, num_classes)
    if key not in _DATA:
        from plsearch.data.dataset import load_splits

        _DATA.clear()  # one fidelity at a time; keeps memory flat
        _DATA[key] = load_splits(cfg, num_classes=num_classes)
    return _DATA[key]


def clear() -> None:
    """Drop the cached splits (tests; a long-lived process that moves to other data)."""
    _DATA.clear()
