"""Studies over fixed configs: the run queue and what is built on it.

- ``runs``: a list of configs x seeds, run resumably by any number of workers.
- ``runplan``: the predicted cost of a list of runs.
- ``confirm``: a front retrained with seeds, judged on the test split.
- ``fidelity``: does a low fidelity rank configs like a high one (independent seeds)?
- ``table``: the truth table's plan, rows, format and summary.
- ``record``: recording a truth table in chunks.
- ``rankstats``: rank correlations with bootstrap intervals, top-k overlap, regret.
"""
