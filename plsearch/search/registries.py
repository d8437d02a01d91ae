"""The search's extension points, one registry shape each: metrics, samplers and pruners.

Same shape as blocks and presets (``plsearch.config.registry.Registry``): ``register_x`` / ``list_x`` /
``get_x``; unknown names raise a ``ValueError`` listing what is allowed; built-ins are listed by name
and imported on first use, so parsing a space imports neither torch nor (for names) optuna.

How to register, in a module a space lists under ``imports:`` (or any module imported first):

- a metric: ``@register_metric("val_sens", "maximize")`` on ``f(ctx: MetricContext) -> float``
  (usable as ``objectives: [val_sens]``), or ``metric: "package.module:function"`` in the space;
- a sampler: ``register_sampler("cmaes", "optuna.samplers:CmaEsSampler")`` (a class or an import
  path; it is called as ``cls(seed=..., **options)`` with the space's ``sampler:`` options);
- a pruner: ``@register_pruner("asha")`` on ``factory(space) -> pruner``; the pruner's protocol
  (``check(state) -> reason | None``) is ``plsearch.search.pruning``'s. The built-in pruners register
  when ``plsearch.search.pruning`` is imported (``get_pruner`` imports it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from plsearch.config.registry import Registry, RegistryError
from plsearch.config.schema import RunConfig

T = TypeVar("T")

__all__ = [
    "Metric",
    "MetricContext",
    "BUILTIN_METRICS",
    "METRICS",
    "SAMPLERS",
    "PRUNERS",
    "register_metric",
    "get_metric",
    "list_metrics",
    "resolve_metric",
    "register_sampler",
    "get_sampler",
    "list_samplers",
    "register_pruner",
    "get_pruner",
    "list_pruners",
]

# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """An objective: its ``name``, ``direction`` (maximize | minimize; None: the space must say) and,
    for custom ones, ``fn(ctx: MetricContext) -> float`` computed after training."""

    name: str
    direction: str | None
    fn: Callable[["MetricContext"], float] | None = None


@dataclass
class MetricContext:
    """What a custom metric sees after training: the trained ``model`` (best weights, eval mode),
    the resolved ``config``, the data ``splits`` (``SegmentationData``), the ``FitResult``, and the
    built-in ``metrics`` and ``profile`` dicts computed so far."""

    model: Any
    config: RunConfig
    splits: Mapping[str, Any]
    fit: Any
    metrics: dict[str, float]
    profile: dict[str, float | None]


BUILTIN_METRICS = {
    "val_dice": "maximize",
    "val_iou": "maximize",
    "params": "minimize",
    "macs": "minimize",
    "latency_ms": "minimize",
}
METRICS: Registry[Metric] = Registry("metric")
for _name, _direction in BUILTIN_METRICS.items():
    METRICS.register(_name, Metric(_name, _direction))


def register_metric(name: str, direction: str) -> Callable[[Callable], Callable]:
    """Decorator: make ``f(ctx: MetricContext) -> float`` usable as ``objectives: [name]``."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction={direction!r} must be maximize or minimize")
    if name in BUILTIN_METRICS:
        raise ValueError(f"metric {name!r} is built in; choose another name")

    def deco(fn: Callable) -> Callable:
        held = METRICS.registered(name)
        same = held is not None and held.fn is not None and _same_function(held.fn, fn)
        METRICS.register(name, Metric(name, direction, fn), replace=same)  # same: a re-imported module
        return fn

    return deco


def _same_function(a: Callable, b: Callable) -> bool:
    """One definition seen twice (a plug-in imported as a script and as a module)."""
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return (
        code_a is not None
        and code_b is not None
        and code_a.co_filename == code_b.co_filename
        and getattr(a, "__qualname__", "") == getattr(b, "__qualname__", "")
    )


def list_metrics() -> list[str]:
    """Names usable in ``objectives:`` (built-in and registered; ``module:function`` also works)."""
    return METRICS.names()


def get_metric(name: str) -> Metric:
    """A built-in, registered, or ``module:function`` metric; ValueError naming what is allowed."""
    if name in METRICS:
        return METRICS.get(name)
    if isinstance(name, str) and ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"metric {name!r} cannot be imported ({e}); give an importable module:function") from None
        return Metric(name, getattr(fn, "direction", None), fn)
    raise RegistryError(
        f"unknown metric {name!r}; choose one of {', '.join(list_metrics())}, or a module:function / register_metric"
    )


resolve_metric = get_metric  # the earlier name

# ----------------------------------------------------------------------------- samplers

SAMPLERS: Registry[type] = Registry(
    "sampler",
    {
        "tpe": "optuna.samplers:TPESampler",
        "nsga2": "optuna.samplers:NSGAIISampler",
        "random": "optuna.samplers:RandomSampler",
        "gp": "optuna.samplers:GPSampler",
    },
)


def register_sampler(name: str, cls: type | str) -> None:
    """Make an Optuna sampler class (or its ``"module:Class"`` path) usable as ``sampler: name``."""
    if isinstance(cls, str):
        SAMPLERS.register_path(name, cls)
    else:
        SAMPLERS.register(name, cls)


def list_samplers() -> list[str]:
    return SAMPLERS.names()


def get_sampler(name: str) -> type:
    """The sampler class (imports optuna)."""
    return SAMPLERS.get(name)


# ----------------------------------------------------------------------------- pruners

PRUNERS: Registry[Callable[..., Any]] = Registry("pruner", loader="plsearch.search.pruning")


def register_pruner(name: str) -> Callable[[T], T]:
    """Decorator: ``factory(space) -> pruner`` usable as ``pruning: {name: ...}`` (see the module doc)."""
    return PRUNERS.decorator(name)


def list_pruners() -> list[str]:
    PRUNERS.load()
    return PRUNERS.names()


def get_pruner(name: str) -> Callable[..., Any]:
    return PRUNERS.get(name)
