"""The search's extension points, one registry shape each: metrics, samplers and pruners.

Same shape as blocks and presets (``plsearch.config.registry.Registry``): ``register_x`` / ``list_x`` /
``get_x``; unknown names raise a ``ValueError`` listing what is allowed; built-ins are listed by name
and imported on first use, so parsing a space imports neither torch nor (for names) optuna.

Each extension point has four parts: the registry, a ``typing.Protocol`` (what plsearch calls), options
the entry parses itself, and a check in ``plsearch.testing``. How to register, in a module a space lists
under ``imports:`` (or any module imported first):

- a metric (``MetricFn``, ``check_metric``): ``@register_metric("val_sens", "maximize")`` on
  ``f(ctx: MetricContext) -> float`` (usable as ``objectives: [val_sens]``), or
  ``metric: "package.module:function"`` in the space;
- a sampler (``SamplerFactory``, ``check_sampler``): ``register_sampler("cmaes", "optuna.samplers:CmaEsSampler")``
  (a class or an import path); it is called as ``cls(seed=..., **options)`` with the space's ``sampler:``
  options, which are its keyword parameters; what it returns is an Optuna ``BaseSampler`` (``Sampler``):
  plsearch needs nothing beyond it;
- a pruner (``PrunerFactory`` / ``Pruner``, ``check_pruner``): ``@register_pruner("asha")`` on a class (or
  factory) called as ``factory(space)`` whose ``check(state) -> reason | None`` runs after every epoch. Its
  options (the space's ``pruning:`` keys besides ``enabled`` and ``name``) are its own: a frozen dataclass
  ``Options`` on the class (defaults for every field; ``options_from`` checks names and types, and
  ``field(metadata={"min": 1})`` a lower bound), or a ``parse_options(mapping) -> options`` classmethod;
  the pruner reads them with ``pruner_options_of(factory, space)``. The built-in pruners register when
  ``plsearch.search.pruning`` is imported (``get_pruner`` imports it).

``SIZE_METRICS`` names the size objectives (known before training, smaller is better) once; every module
that asks "is this a size?" reads it.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence, TypeVar

from plsearch.config.registry import Registry, RegistryError
from plsearch.config.schema import RunConfig, yaml_number

if TYPE_CHECKING:  # pragma: no cover
    from optuna.samplers import BaseSampler as Sampler

    from plsearch.search.pruning import EpochState

T = TypeVar("T")

__all__ = [
    "SIZE_METRICS",
    "COUNTED_SIZES",
    "Metric",
    "MetricFn",
    "MetricContext",
    "Sampler",
    "SamplerFactory",
    "Pruner",
    "PrunerFactory",
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
    "default_pruner",
    "pruner_options",
    "pruner_options_of",
    "options_from",
    "unknown_options",
    "PRUNING_KEYS",
]

# Size objectives: known before training (counted from the wiring, or measured), smaller is better. The one
# list: constraints accept these, pruners rank trials by them, confirmation and the Pareto table read them.
SIZE_METRICS: tuple[str, ...] = ("params", "macs", "latency_ms")
COUNTED_SIZES: tuple[str, ...] = ("params", "macs")  # the exact counts among them (integers, budgets by preset)

# ----------------------------------------------------------------------------- metrics


class MetricFn(Protocol):
    """What ``register_metric`` registers: called once after training, returns one finite float (the same
    for the same context; ``plsearch.testing.check_metric``)."""

    def __call__(self, ctx: MetricContext, /) -> float: ...


@dataclass(frozen=True)
class Metric:
    """An objective: its ``name``, ``direction`` (maximize | minimize; None: the space must say) and,
    for custom ones, ``fn(ctx: MetricContext) -> float`` computed after training."""

    name: str
    direction: str | None
    fn: MetricFn | None = None


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


BUILTIN_METRICS = {"val_dice": "maximize", "val_iou": "maximize", **dict.fromkeys(SIZE_METRICS, "minimize")}
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


class SamplerFactory(Protocol):
    """What ``register_sampler`` registers: a class called as ``cls(seed=seed, **options)`` (the space's
    ``sampler:`` options are its keyword parameters, read from its signature) that returns an Optuna
    sampler. The sampler itself needs nothing beyond ``optuna.samplers.BaseSampler`` (``Sampler``): the
    study asks it for every axis; the same seed must give the same samples (``check_sampler``)."""

    def __call__(self, *, seed: int | None = ..., **options: Any) -> Sampler: ...


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


class Pruner(Protocol):
    """What the search calls on a pruner: after every epoch but the last, ``check(state)`` returns why the
    trial should stop (one line, recorded with the pruned trial) or None to go on. ``state`` is a
    ``plsearch.search.pruning.EpochState`` (the live trial, the epoch, the Dice curve, the sizes). A start
    trial (``state.start``) is never stopped, whatever ``check`` says."""

    def check(self, state: EpochState, /) -> str | None: ...


class PrunerFactory(Protocol):
    """What ``register_pruner`` registers: called once per trial as ``factory(space) -> Pruner``; it may
    raise ``ValueError`` for a space it cannot prune (e.g. median with several objectives). Its options
    come from the space's ``pruning:`` section: declare them as a frozen dataclass ``Options`` attribute
    (or a ``parse_options(mapping)`` classmethod) and read them with ``pruner_options_of(factory, space)``;
    a factory with neither takes no options."""

    def __call__(self, space: Any, /) -> Pruner: ...


PRUNERS: Registry[PrunerFactory] = Registry("pruner", loader="plsearch.search.pruning")


def register_pruner(name: str) -> Callable[[T], T]:
    """Decorator: ``factory(space) -> pruner`` usable as ``pruning: {name: ...}`` (see the module doc)."""
    return PRUNERS.decorator(name)


def list_pruners() -> list[str]:
    PRUNERS.load()
    return PRUNERS.names()


def get_pruner(name: str) -> PrunerFactory:
    return PRUNERS.get(name)


PRUNING_KEYS = ("enabled", "name")  # the keys of ``pruning:`` the parser takes; the rest are the pruner's


def default_pruner(n_objectives: int) -> str:
    """The pruner of a space that names none: dominance for several objectives, median for one."""
    return "dominance" if n_objectives > 1 else "median"


def options_from(cls: type, given: Mapping[str, Any], where: str, owner: str = "", also: Sequence[str] = ()) -> Any:
    """``cls(**given)`` for a frozen dataclass of options (every field with a default), checked first: unknown
    names (one line naming them and the allowed ones), types (``int``, ``float``, ``bool``, ``str`` fields)
    and a field's ``metadata={"min": lo}``. ``where`` prefixes the messages (``"pruning"``), ``owner`` names
    whose options they are, ``also`` lists the keys the caller takes itself (``enabled``, ``name``).
    Raises ValueError."""
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown_options(given, known, where, owner, also)
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation naming a type out of reach: read the plain names
        hints = {n: f.type for n, f in known.items()}
    plain = {"int": int, "float": float, "bool": bool, "str": str}
    out: dict[str, Any] = {}
    for name, value in given.items():
        tp, lo = hints.get(name), known[name].metadata.get("min")
        tp = plain.get(tp, tp) if isinstance(tp, str) else tp
        key = f"{where}.{name}={value!r}"
        if tp is bool and not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{key} must be an integer" + (f" >= {lo}" if lo is not None else ""))
        if tp is float:
            value = yaml_number(value)  # YAML 1.1 reads 1e-3 as a string
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < float("inf"):
                raise ValueError(f"{key} must be a finite number")
            value = float(value)
        if tp is str and not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        if lo is not None and value < lo:
            raise ValueError(f"{key} must be {'an integer' if tp is int else 'a number'} >= {lo}")
        out[name] = value
    return cls(**out)


def unknown_options(
    given: Mapping[str, Any], allowed: Iterable[str], where: str, owner: str = "", also: Sequence[str] = ()
) -> None:
    """Raise ValueError (one line) when ``given`` holds a name outside ``allowed``: it names them and every
    allowed key (``also`` first: the keys the caller takes itself)."""
    allowed = list(allowed)
    bad = sorted(map(str, set(given) - set(allowed)))
    if bad:
        names = ", ".join([*also, *allowed]) or "none"
        raise ValueError(
            f"{where}: unknown option(s) {', '.join(bad)}{f' for {owner}' if owner else ''}; allowed: {names}"
        )


def pruner_options(name: str, given: Mapping[str, Any]) -> Any:
    """Pruner ``name``'s options from the space's ``pruning:`` keys (``enabled`` and ``name`` taken out): its
    ``parse_options(given)``, else its ``Options`` dataclass through ``options_from``, else None (it takes no
    options; any given is an error). Raises ValueError naming the option and the allowed ones."""
    entry: Any = get_pruner(name)
    if callable(getattr(entry, "parse_options", None)):
        return entry.parse_options(given)
    options_cls = getattr(entry, "Options", None)
    if options_cls is None:
        unknown_options(given, (), "pruning", f"pruner {name}", PRUNING_KEYS)
        return None
    return options_from(options_cls, given, "pruning", f"pruner {name}", PRUNING_KEYS)


def pruner_options_of(entry: Any, space: Any) -> Any:
    """The options ``entry`` (a registered pruner) runs with in ``space``: the parsed ones
    (``space.pruning.options``); for a space built by hand, its ``pruning``'s attributes named as the fields of
    the entry's ``Options``, defaults for the rest. An entry with ``parse_options`` and no ``Options``: the
    parsed ones as they are."""
    p = space.pruning
    opts, options_cls = getattr(p, "options", None), getattr(entry, "Options", None)
    if options_cls is None or isinstance(opts, options_cls):
        return opts
    given = {f.name: getattr(p, f.name) for f in dataclasses.fields(options_cls) if f.init and hasattr(p, f.name)}
    return options_cls(**given)


def __getattr__(attr: str) -> Any:
    if attr == "Sampler":  # optuna.samplers.BaseSampler, imported on first use (a type alias: no more is asked)
        from optuna.samplers import BaseSampler

        return BaseSampler
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
