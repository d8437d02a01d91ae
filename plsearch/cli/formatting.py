"""What the CLIs print: metric tables, one line per trial or reference. Only the CLI package prints."""

from __future__ import annotations

from typing import Any


def format_metrics(metrics: dict[str, float], title: str = "") -> str:
    """A two-column table: per-image mean and pooled (global) value of every figure."""
    names = [k for k in metrics if not k.startswith("global_") and isinstance(metrics[k], float)]
    lines = [title] if title else []
    lines.append(f"{'metric':<14}{'per-image':>10}{'global':>10}")
    for k in names:
        g = metrics.get(f"global_{k}")
        lines.append(f"{k:<14}{metrics[k]:>10.4f}" + (f"{g:>10.4f}" if g is not None else ""))
    if "images" in metrics:
        lines.append(f"({metrics['images']} images; per-image figures are means over images)")
    return "\n".join(lines)


def fmt(x: Any, digits: int = 4) -> str:
    """A number to ``digits`` decimals, ``-`` for None."""
    return "-" if x is None else f"{x:.{digits}f}"
