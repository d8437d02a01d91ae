"""Plots: matplotlib figures written as PNG; leaves that import no other plsearch module.

- ``study``: a search's front, history, hypervolume and importances.
- ``curves``: learning curves across runs.
- ``training``: one run's curves and overlays.
"""
