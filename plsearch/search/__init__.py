"""Optuna-driven search over the progressive-learning graph (``python -m plsearch.search``).

- ``space``: YAML search spaces -> ``SearchSpace`` (dotted RunConfig paths -> Optuna distributions);
- ``objective``: one trial (config -> profile -> constraints -> fit -> metrics), ``register_metric``;
- ``pruning``: ``DominancePruner`` for multi-objective studies, Optuna's pruners otherwise;
- ``runner``: the resumable trial loop (``run_search``); ``references``: presets at the same fidelity;
- ``storage``: SQLite / journal file / PostgreSQL specs, one-line errors, ``redact_url``;
- ``workers``: several workers on one study (stale trials, exact counts, heartbeats, ``--workers``);
- ``records``: trial records, Pareto front and the files holding them.
Optuna is imported inside functions, so importing this package stays light.
"""

from __future__ import annotations

from plsearch.search.objective import MetricContext, Objective, register_metric
from plsearch.search.pruning import DominancePruner
from plsearch.search.runner import SearchError, SearchResult, run_search
from plsearch.search.space import SearchSpace, SearchSpaceError, load_space, parse_space
from plsearch.search.storage import StorageError, redact_url

__all__ = ["SearchSpace", "SearchSpaceError", "load_space", "parse_space", "Objective", "MetricContext",
           "register_metric", "DominancePruner", "run_search", "SearchResult", "SearchError", "StorageError",
           "redact_url"]
