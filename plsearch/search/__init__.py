"""Optuna-driven search over the progressive-learning graph (``python -m plsearch.search``).

- ``space``: YAML search spaces -> ``SearchSpace`` (dotted RunConfig paths -> Optuna distributions);
- ``objective``: one trial (config -> profile -> constraints -> fit -> metrics);
- ``registries``: metrics, samplers and pruners (``register_x`` / ``list_x`` / ``get_x``), their protocols
  (``MetricFn``, ``SamplerFactory``, ``Pruner``, ``PrunerFactory``) and the size objectives (``SIZE_METRICS``);
- ``pruning``: ``DominancePruner`` for multi-objective studies, Optuna's pruners otherwise;
- ``runner``: the resumable trial loop (``run_search``); ``references``: presets at the same fidelity;
- ``storage``: SQLite / journal file / PostgreSQL specs, one-line errors, ``redact_url``;
- ``workers``: several workers on one study (stale trials, exact counts, heartbeats, ``--workers``);
- ``optuna_private``: every use of Optuna beyond its public API (storage handle, trial ids, heartbeats, journal lock);
- ``records``: trial records, Pareto front and the files holding them;
- ``pareto``: the Pareto front of a study's records and its table; ``asha``: multi-objective successive halving;
- ``parsing``: the space file's section parsers; ``budgets``: budgets relative to a preset;
- ``start``: start configs; ``study``: opening a search's study; ``studies``: opening one read-only;
- ``datacache``: one loaded copy of the splits per fidelity; ``provenance``: versions and git revision;
- ``confirm_section``: the ``confirm:`` section of a space file.
Optuna is imported inside functions, so importing this package stays light.
"""

from __future__ import annotations

from plsearch.search.objective import Objective
from plsearch.search.pruning import DominancePruner
from plsearch.search.registries import (
    SIZE_METRICS,
    MetricContext,
    MetricFn,
    Pruner,
    PrunerFactory,
    SamplerFactory,
    get_metric,
    get_pruner,
    get_sampler,
    list_metrics,
    list_pruners,
    list_samplers,
    register_metric,
    register_pruner,
    register_sampler,
)
from plsearch.search.runner import SearchError, SearchResult, run_search
from plsearch.search.space import SearchSpace, SearchSpaceError, load_space, parse_space
from plsearch.search.storage import StorageError, redact_url

__all__ = [
    "SearchSpace",
    "SearchSpaceError",
    "load_space",
    "parse_space",
    "Objective",
    "MetricContext",
    "register_metric",
    "DominancePruner",
    "run_search",
    "SearchResult",
    "SearchError",
    "StorageError",
    "redact_url",
    "get_metric",
    "list_metrics",
    "register_sampler",
    "get_sampler",
    "list_samplers",
    "register_pruner",
    "get_pruner",
    "list_pruners",
    "MetricFn",
    "SamplerFactory",
    "Pruner",
    "PrunerFactory",
    "SIZE_METRICS",
]
