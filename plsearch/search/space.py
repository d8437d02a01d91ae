"""Search spaces: a YAML file of dotted ``RunConfig`` paths mapped one-to-one onto Optuna distributions.

A space file has search axes (top-level keys that are dotted config paths) and sections::

    model.steps: {low: 1, high: 4}                       # IntDistribution (int field)
    model.ocs: {low: 0.5, high: 2.0, step: 0.25}         # FloatDistribution (float field)
    train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
    model.plan: [table1, bionet]                         # CategoricalDistribution
    model.block: {choices: [plconv, convbnrelu]}
    model.base_width: 8                                  # fixed value (not searched)
    model.bsc: {value: [false, true, true, true]}        # fixed list value
    fidelity: {data.image_size: 32, train.epochs: 3}     # fixed values that set the cost of a trial
    objectives: [val_dice, macs]                         # or [{metric: m, direction: maximize}]
    constraints: {params: 2.0e6, macs: 1.0e8}            # upper bounds, checked before training
    sampler: tpe                                         # or {name: tpe, n_startup_trials: 4}
    pruning: {name: dominance, n_startup_trials: 3, n_warmup_epochs: 1, min_delta: 0.0}  # name, then its own options
    seed: 0
    n_trials: 10
    timeout: null                                        # seconds from the start (references included), or null
    references: [plnet, plnet-small, bionet, unet]       # presets trained at the same fidelity
    profile: {latency: false}                            # measure latency even if not an objective
    trivial_margin: 0.05                                 # val Dice needed above the trivial predictors'
    start: [{model.steps: 1, model.ocs: 0.5, ...}]       # whole configs trained first (plsearch.search.start)
    imports: [my_blocks.py, mypkg.metrics]               # plug-ins: register blocks/metrics first

Extending without touching plsearch: register a block (``plsearch.config.registry.register_block``) or a
metric (``plsearch.search.register_metric`` or ``objectives: [{metric: "module:function", ...}]``)
in a module the space lists under ``imports:`` (see examples/custom_block_search.py).

``parse_space`` validates everything and raises ``SearchSpaceError`` naming the key and what is
allowed; combinations that only fail together (e.g. ``bsc`` with ``transition: none``) are left
to ``SearchSpace.build`` (``ConfigError``), which the objective records as an infeasible trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from plsearch.config.gate import resolve
from plsearch.config.schema import ConfigError, RunConfig, yaml_number
from plsearch.search.confirm_section import parse_confirm_section
from plsearch.search.parsing import (
    DEFAULT_REFERENCES,
    SECTIONS,
    Axis,
    MetricSpec,
    Pruning,
    SearchSpaceError,
    as_int,
    check_value,
    parse_axis,
    parse_constraints,
    parse_objectives,
    parse_pruning,
    parse_references,
    parse_sampler,
    run_imports,
    sampler_class,
)
from plsearch.search.start import Start, parse_start

__all__ = [
    "SearchSpace",
    "SearchSpaceError",
    "Axis",
    "MetricSpec",
    "Pruning",
    "load_space",
    "parse_space",
    "sampler_class",
    "ConfigError",
]


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space. ``build(params)`` turns sampled params into a ``RunConfig``."""

    name: str
    axes: tuple[Axis, ...]
    fixed: tuple[tuple[str, Any], ...]  # fidelity + fixed values, applied before the sampled ones
    objectives: tuple[MetricSpec, ...] = (MetricSpec("val_dice", "maximize"), MetricSpec("macs", "minimize"))
    constraints: tuple[tuple[str, float], ...] = ()
    sampler: str = "tpe"
    sampler_options: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    pruning: Pruning = Pruning()
    n_trials: int = 10
    timeout: float | None = None
    references: tuple[str, ...] = DEFAULT_REFERENCES
    latency: bool = False
    trivial_margin: float = 0.05  # a trained trial must beat the trivial predictors' val Dice by at least this
    start: Start = ()  # configs trained first, to the end, whatever the workers' timing (plsearch.search.start)
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def distributions(self) -> dict[str, Any]:
        return {a.path: a.distribution() for a in self.axes}

    def sample(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` (an Optuna ``Trial`` or ``FixedTrial``) for every axis; returns ``{path: value}``."""
        return {a.path: _suggest(trial, a) for a in self.axes}

    def build(
        self, params: Mapping[str, Any], extra: Mapping[str, Any] | None = None, *, data: Any = None
    ) -> RunConfig:
        """``RunConfig`` defaults + fixed values + ``params`` (+ ``extra``), through ``plsearch.config.gate.resolve``.

        ``data`` (the loaded splits, or a channel count) sets ``model.in_channels``.

        Raises:
            ConfigError: the combination is invalid, or the image is smaller than the network's stride
                (``StrideError``); the objective records it as infeasible.
        """
        return resolve(None, [*self.fixed, *params.items(), *(extra or {}).items()], data=data)

    def corner_params(self) -> list[dict[str, Any]]:
        """All-low/all-high corners plus each axis at each extreme (others at their first corner)."""
        first = {a.path: a.corners()[0] for a in self.axes}
        out = [first, {a.path: a.corners()[1] for a in self.axes}]
        for a in self.axes:
            for v in a.corners():
                out.append({**first, a.path: v})
        return out


def _suggest(trial: Any, axis: Axis) -> Any:
    if axis.kind == "categorical":
        return trial.suggest_categorical(axis.path, list(axis.choices))
    assert axis.low is not None and axis.high is not None  # a range axis always has both (parse_axis)
    if axis.kind == "int":
        return trial.suggest_int(axis.path, int(axis.low), int(axis.high), step=int(axis.step or 1), log=axis.log)
    return trial.suggest_float(axis.path, axis.low, axis.high, step=axis.step, log=axis.log)


# ----------------------------------------------------------------------------- parsing


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file; the study name defaults to the file's stem."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"search space {str(p)!r} not found; pass --space with an existing YAML file (e.g. search_spaces/tiny.yaml)"
        )
    try:
        from plsearch.config.safeyaml import YamlLimitError, load_yaml

        try:
            data = load_yaml(p, what="search space")  # size and alias-expansion bounds
        except YamlLimitError as e:
            raise SearchSpaceError(str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SearchSpaceError(f"{p}:{where}: YAML syntax error ({problem}); fix the file's syntax") from None
    return parse_space(data, name=p.stem, base_dir=p.parent)


def parse_space(data: Any, name: str = "space", base_dir: str | Path | None = None) -> SearchSpace:
    """Validate a loaded YAML mapping and return a ``SearchSpace``.

    Raises:
        SearchSpaceError: one line naming the key and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise SearchSpaceError(f"a search space must be a mapping of keys to values, got {type(data).__name__}")
    run_imports(data.get("imports"), Path(base_dir) if base_dir is not None else None)
    axes: list[Axis] = []
    fixed: dict[str, Any] = {}
    for key, spec in data.items():
        if not isinstance(key, str):
            raise SearchSpaceError(f"key {key!r} must be a string")
        if key in SECTIONS:
            continue
        if "." not in key:
            raise SearchSpaceError(
                f"unknown section {key!r}; sections are {', '.join(SECTIONS)}, and search axes "
                "are dotted config paths such as model.steps"
            )
        parsed = parse_axis(key, spec)
        if isinstance(parsed, Axis):
            axes.append(parsed)
        else:
            fixed[key] = parsed[1]
    fidelity = data.get("fidelity") or {}
    if not isinstance(fidelity, Mapping):
        raise SearchSpaceError(f"fidelity must be a mapping of config paths to fixed values, got {fidelity!r}")
    for key, value in fidelity.items():
        if key in fixed or any(a.path == key for a in axes):
            raise SearchSpaceError(f"{key} is set both in fidelity and at the top level; keep one")
        if isinstance(value, Mapping):
            raise SearchSpaceError(f"fidelity.{key} must be a fixed value, got {value!r}; search it at the top level")
        fixed[key] = check_value(key, value)
    if not axes:
        raise SearchSpaceError("the space has no search axes; add one, e.g. model.steps: {low: 1, high: 4}")
    objectives = parse_objectives(data.get("objectives", ["val_dice", "macs"]))
    cons = parse_constraints(data.get("constraints"), fixed)
    sampler, options = parse_sampler(data.get("sampler", "tpe"))
    pruning = parse_pruning(data.get("pruning", True), len(objectives))
    if pruning.name == "median" and len(objectives) > 1:
        raise SearchSpaceError(
            "pruning.name=median needs one objective (Optuna cannot prune multi-objective "
            "studies); use asha or dominance"
        )
    timeout = yaml_number(data.get("timeout"))
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf")
    ):  # NaN fails every comparison
        raise SearchSpaceError(f"timeout={timeout!r} must be a positive number of seconds or null")
    refs = parse_references(data.get("references", list(DEFAULT_REFERENCES)))
    margin = yaml_number(data.get("trivial_margin", 0.05))
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise SearchSpaceError(
            f"trivial_margin={margin!r} must be a number in [0, 1): how much a trial's val Dice "
            "must beat the trivial predictors' to count as learned"
        )
    # python -m plsearch.confirm reads it from the stored space; checked here so a typo fails early
    try:
        parse_confirm_section(data.get("confirm"))
    except ValueError as e:
        raise SearchSpaceError(str(e)) from None
    prof = data.get("profile") or {}
    if not isinstance(prof, Mapping) or set(prof) - {"latency"} or not isinstance(prof.get("latency", False), bool):
        raise SearchSpaceError(f"profile={prof!r} must be {{latency: true|false}}")
    name_ = data.get("name", name)
    if not isinstance(name_, str) or not name_:
        raise SearchSpaceError(f"name={name_!r} must be a non-empty string")
    return SearchSpace(
        name=name_,
        axes=tuple(axes),
        fixed=tuple(fixed.items()),
        objectives=objectives,
        constraints=cons,
        sampler=sampler,
        sampler_options=options,
        seed=as_int("seed", data.get("seed", 0), 0),
        pruning=pruning,
        n_trials=as_int("n_trials", data.get("n_trials", 10), 1),
        timeout=None if timeout is None else float(timeout),
        references=tuple(refs),
        latency=bool(prof.get("latency", False))
        or any(o.name == "latency_ms" for o in objectives)
        or any(k == "latency_ms" for k, _ in cons),
        description=str(data.get("description", "")),
        raw=dict(data),
        trivial_margin=float(margin),
        start=parse_start(data.get("start"), axes),
    )
