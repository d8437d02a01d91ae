"""Start configs: the trials a study trains first, the same whatever the workers' timing.

A space's ``start:`` section lists whole configs (a value for every axis). They are enqueued once, when
the study is created (Optuna's ``enqueue_trial``), so trials ``0 .. k-1`` train exactly them, in that
order, with one worker or several and whichever finishes first; the sampler's own start-up trials and
TPE follow. No pruner stops them: they run to the end, so each is a complete, full-fidelity point.

Why: with several workers the sampler's random start-up draws depend on which trials have finished
(and on each worker's seed), so a short search's front varies from run to run. Start configs chosen
spread over the size axis and measured to learn at the space's fidelity make the front's shape a
property of the space file: a later trial that dominates one start point takes its place, so ``k``
mutually non-dominated start points leave a front of at least ``k`` points unless single trials
dominate several of them at once, i.e. are smaller than one and more accurate than a larger one
(``search_spaces/ipl_epl.yaml`` spaces its four so that a front under 3 points needs such nets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from plsearch.search.parsing import Axis, SearchSpaceError

Start = tuple[tuple[tuple[str, Any], ...], ...]  # one ((path, value), ...) per start config, axis order


def in_axis(axis: Axis, value: Any) -> bool:
    """Whether ``value`` is one the axis can sample (its choices, or its range and step)."""
    if axis.kind == "categorical":
        return any(type(c) is type(value) and c == value for c in axis.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    assert axis.low is not None and axis.high is not None  # a range axis always has both (parse_axis)
    if axis.kind == "int" and (isinstance(value, float) and not value.is_integer()):
        return False
    if not axis.low <= value <= axis.high:
        return False
    if axis.step:
        n = (value - axis.low) / axis.step
        return abs(n - round(n)) <= 1e-9 * max(1.0, abs(n))
    return True


def parse_start(spec: Any, axes: tuple[Axis, ...] | list[Axis]) -> Start:
    """The ``start:`` section: a list of mappings, each giving a value for every axis."""
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise SearchSpaceError(f"start must be a list of configs ({{axis path: value, ...}}), got {spec!r}")
    paths = [a.path for a in axes]
    out = []
    for i, item in enumerate(spec):
        if not isinstance(item, Mapping):
            raise SearchSpaceError(f"start[{i}] must be a mapping of axis paths to values, got {item!r}")
        unknown = sorted(str(k) for k in item if k not in paths)
        missing = [p for p in paths if p not in item]
        if unknown or missing:
            raise SearchSpaceError(
                f"start[{i}]: "
                + "; ".join(
                    x
                    for x in (
                        f"{', '.join(unknown)} not searched" if unknown else "",
                        f"no value for {', '.join(missing)}" if missing else "",
                    )
                    if x
                )
                + "; give one value for each axis of the space, nothing else"
            )
        values = []
        for a in axes:
            v = item[a.path]
            if not in_axis(a, v):
                allowed = (
                    list(a.choices)
                    if a.kind == "categorical"
                    else f"[{a.low}, {a.high}]" + (f" step {a.step}" if a.step else "")
                )
                raise SearchSpaceError(f"start[{i}]: {a.path}={v!r} is not in the axis ({allowed})")
            values.append((a.path, int(v) if a.kind == "int" else float(v) if a.kind == "float" else v))
        if tuple(values) in out:
            raise SearchSpaceError(f"start[{i}] repeats an earlier start config; list each once")
        out.append(tuple(values))
    return tuple(out)


def start_index(start: Start, params: Mapping[str, Any]) -> int | None:
    """Which start config ``params`` are (a re-queued or surplus start trial still is one), or None."""
    for i, config in enumerate(start):
        if all(p in params and params[p] == v for p, v in config):
            return i
    return None


def enqueue_start(study: Any, start: Start) -> int:
    """Enqueue the start configs on a new study (already-queued ones are skipped); returns how many."""
    for config in start:
        study.enqueue_trial(dict(config), skip_if_exists=True)
    return len(start)
