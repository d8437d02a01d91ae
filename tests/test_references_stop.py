"""Ctrl-C or SIGTERM while references train in parallel: the search stops now, not after them."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from plsearch.search.references import _stop


def test_stopping_the_pool_ends_running_references_at_once():
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    job = pool.submit(time.sleep, 120)  # a reference that would train for minutes
    deadline = time.monotonic() + 60
    while not job.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    procs = list(pool._processes.values())
    assert job.running() and procs
    _stop(pool)
    for p in procs:
        p.join(timeout=10)
    assert all(not p.is_alive() for p in procs)  # shutdown(wait=True) would have waited the 120 s
