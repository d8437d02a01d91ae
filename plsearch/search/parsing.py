"""The search-space file's section parsers: config paths, values, axes, objectives, sampler, pruning.

``plsearch.search.space.parse_space`` calls one public ``parse_*`` function per section. Values
for config paths are checked by ``plsearch.config.gate.check_value`` (the field's own rules); combinations
are ``plsearch.config.gate.resolve``'s when a trial is built. Imports no torch and, for names, no optuna.
Every problem raises ``SearchSpaceError`` with one line naming the key and what is allowed.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from plsearch.config.gate import check_value as gate_check_value
from plsearch.config.schema import ConfigError, path_type, yaml_number
from plsearch.search.registries import (
    PRUNING_KEYS,
    SIZE_METRICS,
    default_pruner,
    get_sampler,
    list_pruners,
    list_samplers,
    pruner_options,
    resolve_metric,
    unknown_options,
)

SECTIONS = (
    "name",
    "description",
    "imports",
    "objectives",
    "constraints",
    "fidelity",
    "sampler",
    "seed",
    "pruning",
    "n_trials",
    "timeout",
    "references",
    "profile",
    "confirm",
    "trivial_margin",
    "start",
)
CONSTRAINT_METRICS = SIZE_METRICS  # upper bounds are on sizes, checked before training
DEFAULT_REFERENCES = ("plnet", "plnet-small", "bionet", "unet")


class SearchSpaceError(ValueError):
    """A search-space file is invalid; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Axis:
    """One searched config path and its Optuna distribution (``kind``: int, float or categorical)."""

    path: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None  # a range axis always has both (parse_axis)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def corners(self) -> tuple[Any, ...]:
        """The extreme values: (low, high) or (first choice, last choice)."""
        return (self.choices[0], self.choices[-1]) if self.kind == "categorical" else (self.low, self.high)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: str  # "maximize" | "minimize"


@dataclass(frozen=True)
class Pruning:
    """The space's ``pruning:`` section: ``enabled``; ``name``, asha, dominance, median or a registered pruner
    (None: ``default_pruner``, dominance for several objectives, median for one); ``options``, the rest of the
    section as that pruner parsed it (its ``Options``; ``plsearch.search.registries.pruner_options``).

    An option reads as an attribute too (``space.pruning.eta``), as when the options were fields here."""

    enabled: bool = True
    name: str | None = None
    options: Any = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr == "options":
            raise AttributeError(attr)
        try:
            return getattr(self.options, attr)
        except AttributeError:
            raise AttributeError(f"pruning has no option {attr!r} (options: {self.options!r})") from None


def _field_type(path: str) -> Any:
    if path.partition(".")[0] not in ("model", "data", "train") or "." not in path:
        raise SearchSpaceError(
            f"unknown key {path!r}; a search axis is a dotted RunConfig path starting with model., data. or "
            f"train.; sections are: {', '.join(SECTIONS)}"
        )
    try:
        return path_type(path)
    except ConfigError as e:
        raise SearchSpaceError(str(e).replace("unknown key", "unknown config path")) from None


def check_value(path: str, value: Any) -> Any:
    """``value`` for ``path``, coerced and checked against the field's own rules (``plsearch.config.gate``)."""
    _field_type(path)
    try:
        return gate_check_value(path, value)
    except ConfigError as e:
        raise SearchSpaceError(str(e)) from None


def number(path: str, name: str, v: Any) -> float:
    v = yaml_number(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SearchSpaceError(f"{path}: {name}={v!r} must be a number")
    if v != v or v in (float("inf"), float("-inf")):  # NaN passes every range check after this
        raise SearchSpaceError(f"{path}: {name}={v!r} must be a finite number")
    return v


def parse_axis(path: str, spec: Any) -> Axis | tuple[str, Any]:
    """A YAML value -> an Axis (searched) or ``(path, value)`` (fixed)."""
    tp = _field_type(path)
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, Mapping):
        return path, check_value(path, spec)
    allowed = {"low", "high", "step", "log", "choices", "value"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise SearchSpaceError(
            f"{path}: unknown key(s) {', '.join(map(str, unknown))}; allowed: "
            "low/high (+ step or log), choices, or value"
        )
    if "value" in spec:
        if len(spec) > 1:
            raise SearchSpaceError(f"{path}: 'value' fixes the path and cannot be combined with other keys")
        return path, check_value(path, spec["value"])
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise SearchSpaceError(f"{path}: 'choices' cannot be combined with low/high/step/log")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SearchSpaceError(f"{path}: choices must be a non-empty list, got {choices!r}")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise SearchSpaceError(
                    f"{path}: choice {c!r} is not a scalar; Optuna choices must be "
                    "null, bool, int, float or str (fix list values with {value: [...]})"
                )
        if len({(type(c), c) for c in choices}) != len(choices):
            raise SearchSpaceError(f"{path}: choices {choices!r} repeat a value; list each once")
        return Axis(path, "categorical", choices=tuple(check_value(path, c) for c in choices))
    if "low" not in spec or "high" not in spec:
        raise SearchSpaceError(
            f"{path}: a range needs both low and high (got {sorted(spec)}); or use choices: [...] or a fixed value"
        )
    is_int = tp is int
    if not is_int and tp is not float:
        raise SearchSpaceError(f"{path}: a low/high range needs a number field, {path} is {tp}; use choices: [...]")
    low, high = number(path, "low", spec["low"]), number(path, "high", spec["high"])
    if is_int and isinstance(low, float) and low.is_integer() and isinstance(high, float) and high.is_integer():
        low, high = int(low), int(high)
    step, log = spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise SearchSpaceError(f"{path}: log={log!r} must be true or false")
    if is_int and (float(low) != int(low) or float(high) != int(high)):
        raise SearchSpaceError(f"{path} is an integer field; low={low!r} and high={high!r} must be integers")
    if low > high:
        raise SearchSpaceError(f"{path}: inverted range low={low} > high={high}; swap them")
    if low == high:
        raise SearchSpaceError(f"{path}: empty range low == high == {low}; give a fixed value instead ({path}: {low})")
    if step is not None:
        step = number(path, "step", step)
        if log:
            raise SearchSpaceError(f"{path}: step and log cannot be combined (Optuna forbids it); drop one")
        if step <= 0 or (is_int and float(step) != int(step)):
            raise SearchSpaceError(f"{path}: step={step!r} must be a positive {'integer' if is_int else 'number'}")
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
            raise SearchSpaceError(
                f"{path}: step={step} does not divide high - low = {high - low}; choose a step that does or move high"
            )
    if log and low <= 0:
        raise SearchSpaceError(f"{path}: log=true needs low > 0, got low={low}")
    for v in (low, high):
        check_value(path, int(v) if is_int else float(v))
    if is_int:
        return Axis(path, "int", int(low), int(high), int(step) if step is not None else None, log)
    return Axis(path, "float", float(low), float(high), float(step) if step is not None else None, log)


def parse_objectives(spec: Any) -> tuple[MetricSpec, ...]:
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list) or not spec:
        raise SearchSpaceError(f"objectives must be a non-empty list (e.g. [val_dice, macs]), got {spec!r}")
    out: list[MetricSpec] = []
    for item in spec:
        direction = None
        if isinstance(item, Mapping):
            extra = sorted(set(item) - {"metric", "direction"})
            if extra or "metric" not in item:
                raise SearchSpaceError(
                    f"objectives: entry {dict(item)!r} must be a metric name or "
                    "{metric: NAME, direction: maximize|minimize}"
                )
            name, direction = item["metric"], item.get("direction")
        else:
            name = item
        if not isinstance(name, str):
            raise SearchSpaceError(f"objectives: metric {name!r} must be a string")
        try:
            metric = resolve_metric(name)
        except ValueError as e:
            raise SearchSpaceError(f"objectives: {e}") from None
        direction = direction or metric.direction
        if direction not in ("maximize", "minimize"):
            raise SearchSpaceError(f"objectives: {name} needs direction maximize or minimize, got {direction!r}")
        if any(o.name == name for o in out):
            raise SearchSpaceError(f"objectives: {name} is listed twice; list each metric once")
        out.append(MetricSpec(name, direction))
    return tuple(out)


def parse_sampler(spec: Any) -> tuple[str, tuple[tuple[str, Any], ...]]:
    options: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        options = dict(spec)
        spec = options.pop("name", "tpe")
    if spec not in list_samplers():
        raise SearchSpaceError(f"sampler={spec!r} is not known; choose one of {', '.join(list_samplers())}")
    if not options:
        return spec, ()
    cls = sampler_class(spec)
    params = inspect.signature(cls).parameters
    allowed = sorted(set(params) - {"self", "seed", "constraints_func"})
    try:
        unknown_options(options, allowed, "sampler", f"sampler {spec}", ("name",))
    except ValueError as e:
        raise SearchSpaceError(str(e)) from None
    options = {k: _sampler_option(spec, k, v, params[k]) for k, v in options.items()}
    import warnings

    try:  # the sampler's own checks, now rather than as a traceback when the study is created
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" options
            cls(seed=0, **options)
    except Exception as e:  # noqa: BLE001 - a plug-in sampler may raise anything: one line naming it
        raise SearchSpaceError(f"sampler {spec} refuses its options ({type(e).__name__}: {e}); fix sampler:") from None
    return spec, tuple(sorted(options.items()))


# Lower bounds of the samplers' count options (the rest: >= 0); probabilities lie in [0, 1].
_SAMPLER_MIN = {"n_ei_candidates": 1, "population_size": 2}


def _sampler_option(sampler: str, name: str, value: Any, param: inspect.Parameter) -> Any:
    """One sampler option checked like a config field, from the constructor's annotation (or its default's type):
    ``int`` a whole number (counts >= 0), ``float`` a finite number (``*_prob`` in [0, 1]), ``bool`` true/false,
    ``None`` where the annotation allows it; an option that takes a Python object (a callable, a sampler) has
    no YAML form and is refused. Raises SearchSpaceError naming the option."""
    ann = param.annotation
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", "") if ann is not inspect.Parameter.empty else ""
    kinds = {t.strip() for t in text.split("|")} if text else set()
    if not kinds and param.default is not inspect.Parameter.empty and param.default is not None:
        kinds = {type(param.default).__name__}
    key = f"sampler.{name}={value!r}"
    if value is None and ("None" in kinds or param.default is None):
        return None
    plain = kinds - {"None"}
    if not plain:
        return value  # a plug-in's option without annotation or default: the constructor checks it
    if plain == {"bool"}:
        if not isinstance(value, bool):
            raise SearchSpaceError(f"{key} must be true or false (sampler {sampler})")
        return value
    if plain == {"int"}:
        lo = _SAMPLER_MIN.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise SearchSpaceError(f"{key} must be an integer >= {lo} (sampler {sampler})")
        return value
    if plain <= {"float", "int"}:
        number = yaml_number(value)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not abs(number) < float("inf"):
            raise SearchSpaceError(f"{key} must be a finite number (sampler {sampler})")
        if (name.endswith("prob") or name.endswith("_weight")) and not (
            0 <= number <= (1 if name.endswith("prob") else float("inf"))
        ):
            raise SearchSpaceError(
                f"{key} must be {'in [0, 1]' if name.endswith('prob') else '>= 0'} (sampler {sampler})"
            )
        return float(number)
    if plain == {"str"}:
        if not isinstance(value, str):
            raise SearchSpaceError(f"{key} must be a string (sampler {sampler})")
        return value
    raise SearchSpaceError(
        f"sampler.{name} takes a Python object ({text}), which a space file cannot give; leave it out, or "
        f"register a sampler that sets it (plsearch.search.registries.register_sampler)"
    )


def sampler_class(name: str) -> type:
    """The Optuna sampler class registered as ``name`` (imports optuna)."""
    return get_sampler(name)


def as_int(key: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise SearchSpaceError(f"{key}={v!r} must be an integer >= {lo}")
    return v


def parse_constraints(cons: Any, fixed: Mapping[str, Any] | None = None) -> tuple[tuple[str, float], ...]:
    """Upper bounds: a number, or ``{at_most: PRESET, times: X}`` (the preset's size at the space's
    fidelity ``fixed``, see ``plsearch.search.budgets``)."""
    cons = cons or {}
    if not isinstance(cons, Mapping):
        raise SearchSpaceError(f"constraints must be a mapping such as {{params: 2.0e+6, macs: 1.0e+8}}, got {cons!r}")
    out = []
    for k, v in cons.items():
        v = yaml_number(v)
        if k not in CONSTRAINT_METRICS:
            raise SearchSpaceError(
                f"constraints: unknown metric {k!r}; allowed: {', '.join(CONSTRAINT_METRICS)} "
                "(upper bounds checked before training)"
            )
        if isinstance(v, Mapping):
            from plsearch.search.budgets import resolve_budget

            try:
                v = resolve_budget(k, {a: yaml_number(b) for a, b in v.items()}, fixed or {})[0]
            except ValueError as e:
                raise SearchSpaceError(str(e)) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
            raise SearchSpaceError(f"constraints.{k}={v!r} must be a positive number (the maximum)")
        out.append((k, float(v)))
    return tuple(out)


def parse_pruning(pr: Any, n_objectives: int = 2) -> Pruning:
    """``true``, ``false`` or ``{enabled, name, ...}``: the parser takes ``enabled`` and ``name`` and hands the
    rest to the pruner's own options (the named one, else ``default_pruner(n_objectives)``)."""
    if isinstance(pr, bool):
        pr = {"enabled": pr}
    if not isinstance(pr, Mapping):
        raise SearchSpaceError(f"pruning={pr!r} must be true, false or a mapping")
    enabled = pr.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SearchSpaceError(f"pruning.enabled={enabled!r} must be true or false")
    name = pr.get("name")
    if name is not None and (not isinstance(name, str) or name not in list_pruners()):
        raise SearchSpaceError(f"pruning.name={name!r} is not known; choose one of {', '.join(list_pruners())}")
    given = {k: v for k, v in pr.items() if k not in PRUNING_KEYS}
    if not enabled and not given:
        return Pruning(False, name)
    try:
        options = pruner_options(name or default_pruner(n_objectives), given)
    except ValueError as e:
        why = "" if name else f" (no pruning.name: {default_pruner(n_objectives)} prunes {n_objectives} objective(s))"
        raise SearchSpaceError(" ".join(str(e).split()) + why) from None
    return Pruning(enabled, name, options)


def parse_references(refs: Any) -> tuple[str, ...]:
    from plsearch.config.presets import list_models

    refs = [] if refs is False or refs is None else refs
    if not isinstance(refs, list) or any(r not in list_models() for r in refs):
        raise SearchSpaceError(f"references={refs!r} must be a list of presets from {list_models()} (or false)")
    return tuple(refs)


def run_imports(entries: Any, base_dir: Path | None) -> None:
    """Import the space's plug-ins (``imports:``) so their blocks and metrics register before validation.

    An entry is a module name (``mypkg.blocks``) or a ``.py`` file relative to the space file.
    """
    import importlib
    import importlib.util
    import sys

    entries = [entries] if isinstance(entries, str) else (entries or [])
    if not isinstance(entries, list):
        raise SearchSpaceError(f"imports={entries!r} must be a list of module names or .py files")
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise SearchSpaceError(f"imports: {entry!r} must be a module name or a .py file")
        if not entry.endswith(".py"):
            if entry in sys.modules:
                continue
            try:
                importlib.import_module(entry)
            except ImportError as e:
                _forget(entry)
                if getattr(e, "name", None) and not entry.startswith(str(e.name)):  # the plug-in's own import
                    raise _plugin_error(entry, e) from e
                raise SearchSpaceError(
                    f"imports: cannot import {entry!r} ({e}); check the name and PYTHONPATH"
                ) from None
            except Exception as e:  # noqa: BLE001 - a plug-in may raise anything at import
                _forget(entry)
                raise _plugin_error(entry, e) from e
            continue
        path = (Path(base_dir or ".") / entry).resolve()
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        if main and Path(main).resolve() == path:
            continue  # the running script itself: its blocks are registered already
        name = f"plsearch_plugin_{path.stem}"
        if name in sys.modules:
            continue
        if not path.is_file():
            raise SearchSpaceError(f"imports: {path} does not exist; give a .py path relative to the space file")
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SearchSpaceError(f"imports: {path} cannot be loaded as a Python module; give a .py file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - a plug-in may raise anything at import
            _forget(name)  # half-imported: not cached, so the next load tries (and fails) again
            raise _plugin_error(entry, e) from e


def _forget(module: str) -> None:
    """Nothing of a plug-in whose import raised stays behind: not its module (nor its submodules) in
    ``sys.modules``, not what it registered before it raised."""
    import sys

    from plsearch.config.registry import forget_module

    for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
        del sys.modules[name]
    forget_module(module)


def _plugin_error(entry: str, e: BaseException) -> SearchSpaceError:
    """One line naming the plug-in and its error (the traceback: ``--debug`` or ``PLSEARCH_DEBUG=1``)."""
    where = ""
    tb = e.__traceback__
    while tb is not None:  # the plug-in's own line that raised, the last frame in a file of its
        if Path(tb.tb_frame.f_code.co_filename).stem == Path(entry).stem or entry in tb.tb_frame.f_globals.get(
            "__name__", ""
        ):
            where = f" (line {tb.tb_lineno})"
        tb = tb.tb_next
    return SearchSpaceError(
        f"imports: plug-in {entry!r} raised {type(e).__name__}: {' '.join(str(e).split()) or 'no message'}"
        f"{where}; fix the plug-in (--debug or PLSEARCH_DEBUG=1 shows the traceback)"
    )
