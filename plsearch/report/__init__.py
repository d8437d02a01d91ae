"""Reports: the tables and figures a person reads.

- ``study``: a study's Pareto front, tables and plots (``python -m plsearch.report``, ``__main__``).
- ``confirm``: the confirmation's tables and plot.
"""
