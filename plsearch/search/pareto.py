"""The Pareto front of a study's records, and its table (``pareto.md``, and what the CLI prints)."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from plsearch.search.registries import COUNTED_SIZES, SIZE_METRICS


def minimisation_form(values: Mapping[str, float], objectives: Sequence[tuple[str, str]]) -> list[float]:
    """The objective values with every one to be minimised (maximised ones negated), in objective order."""
    return [-float(values[n]) if d == "maximize" else float(values[n]) for n, d in objectives]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` dominates ``b`` (both in minimisation form): no worse on every objective, not equal."""
    return all(x <= y for x, y in zip(a, b)) and list(a) != list(b)


def pareto_front(records: Iterable[dict], objectives: Sequence[tuple[str, str]]) -> list[dict]:
    """Non-dominated feasible trained trials (duplicates dropped), sorted by the first size objective."""
    pts = [
        r
        for r in records
        if r["state"] == "COMPLETE"
        and r["feasible"]
        and r["duplicate_of"] is None
        and r["values"]
        and all(r["values"].get(n) is not None for n, _ in objectives)
    ]

    def key(r: dict) -> list[float]:
        return minimisation_form(r["values"], objectives)

    front: list[dict] = []
    for r in pts:
        k = key(r)
        if not any(dominates(key(o), k) for o in pts):
            if not any(key(f) == k for f in front):
                front.append(r)
    size = next((n for n, d in objectives if d == "minimize"), objectives[0][0])
    return sorted(front, key=lambda r: (r["values"][size], r["number"]))


def degenerate_line(records: Iterable[dict]) -> str:
    """The trivial predictors' val Dice, the margin a front point beats it by, and how many trained trials
    did not (degenerate: infeasible, never on the front)."""
    records = list(records)
    deg = [str(r.get("fail_reason")) for r in records if str(r.get("fail_reason") or "").startswith("degenerate")]
    floor = next((r["trivial"] for r in records if r.get("trivial")), None)
    if floor is not None and floor.get("margin") is not None:
        which = (
            "all background" if floor.get("all_background", 0) >= floor.get("all_foreground", 0) else "all foreground"
        )
        return (
            f"trivial predictors' val Dice {floor['best']:.4f} ({which}); a front point beats it by at least "
            f"{floor['margin']:g}; {len(deg)} degenerate trial(s) did not (trained; infeasible, not on the front)\n"
        )
    # a study from before the margin was recorded: what the first degenerate trial's reason says
    m = re.search(r"(all-\w+ [0-9.]+)(?: \+ margin ([0-9.eE+-]+))?", deg[0]) if deg else None
    trivial, margin = (m.group(1), m.group(2)) if m else ("", None)
    what = (
        f"not better than a trivial predictor ({trivial}) by at least {margin} on validation"
        if trivial and margin
        else "no better than a trivial predictor on validation" + (f" ({trivial})" if trivial else "")
    )
    return f"{len(deg)} degenerate trial(s): trained, but {what}; infeasible, not on the front\n"


def reference_value(ref: Mapping[str, Any], name: str) -> float | None:
    """A preset reference's value of objective ``name`` (its metrics, else its profile); None if unknown."""
    if ref.get("fail_reason"):
        return None
    for part in ("metrics", "profile"):
        v = (ref.get(part) or {}).get(name)
        if v is not None:
            return float(v)
    return None


def beaten_by(
    values: Mapping[str, float], references: Mapping[str, Mapping[str, Any]], objectives: Sequence[tuple[str, str]]
) -> list[str]:
    """The preset references that dominate a point with these objective ``values``: at least as good on
    every objective and better on one (the same rule as the front's). A front point a preset beats is one
    to skip: the preset is as small and more accurate, with nothing to search."""
    if any(values.get(n) is None for n, _ in objectives):
        return []
    mine = minimisation_form(values, objectives)
    out = []
    for name, ref in references.items():
        theirs = {n: v for n, _ in objectives if (v := reference_value(ref, n)) is not None}
        if len(theirs) == len(objectives) and dominates(minimisation_form(theirs, objectives), mine):
            out.append(name)
    return out


def beaten_line(
    rows: Sequence[Mapping[str, Any]],
    references: Mapping[str, Mapping[str, Any]],
    objectives: Sequence[tuple[str, str]],
) -> str:
    """One line per front point a preset reference dominates (empty when none is): which preset, its values."""
    lines = []
    for r in rows:
        names = r.get("beaten_by")
        if not names:
            continue
        ref = references[str(names).split(",")[0]]
        vals = ", ".join(
            f"{n} {fmt_count(v) if n in COUNTED_SIZES else f'{v:.4f}'}"
            for n, _ in objectives
            if (v := reference_value(ref, n)) is not None
        )
        lines.append(
            f"trial {r['trial']} is beaten by preset {names} ({vals}): the preset is at least as small and as "
            "accurate; prefer it to this point\n"
        )
    return "".join(lines)


def params_summary(params: dict[str, Any], width: int = 0) -> str:
    """``steps=2 stages=2 ocs=1.25 ...``: leaf names unless two paths share one."""
    leaves = [p.rsplit(".", 1)[-1] for p in params]
    parts = []
    for path, leaf in zip(params, leaves):
        name = leaf if leaves.count(leaf) == 1 else path
        v = params[path]
        parts.append(f"{name}={v:.3g}" if isinstance(v, float) else f"{name}={v}")
    s = " ".join(parts)
    return s if not width or len(s) <= width else s[: width - 1] + "~"


def fmt_count(n: float | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


def pareto_rows(
    front: Sequence[dict],
    objectives: Sequence[tuple[str, str]],
    references: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per front point; ``beaten_by`` names the preset ``references`` that dominate it (the column
    is left out when none does)."""
    rows = []
    for r in front:
        prof, metrics = r.get("profile") or {}, r.get("metrics") or {}
        row = {"trial": r["number"]}
        for name, _ in objectives:
            row[name] = r["values"][name]
        for k in ("val_dice", "val_iou"):
            row.setdefault(k, metrics.get(k))
        for k in SIZE_METRICS:
            row.setdefault(k, prof.get(k))
        row["seconds"] = r["seconds"]
        row["config"] = params_summary(r["params"])
        row["beaten_by"] = ",".join(beaten_by(r["values"], references or {}, objectives)) or None
        rows.append(row)
    empty = [k for k in (rows[0] if rows else {}) if all(r[k] is None for r in rows)]
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


def pareto_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table (also what the CLI prints)."""
    if not rows:
        return "(no feasible completed trial yet)\n"
    cols = list(rows[0])

    def cell(k: str, v: Any) -> str:
        if v is None:
            return "-"
        if k in COUNTED_SIZES:
            return fmt_count(v)
        if isinstance(v, float):
            return f"{v:.4f}" if k.startswith("val_") else f"{v:.1f}" if k == "seconds" else f"{v:.4g}"
        return str(v)

    body = [[cell(k, r[k]) for k in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    line = lambda xs: "| " + " | ".join(x.ljust(w) for x, w in zip(xs, widths)) + " |"  # noqa: E731
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]) + "\n"
