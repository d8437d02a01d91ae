"""Ctrl-C or SIGTERM while references train in parallel: the search stops now, not after them."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from plsearch.search.references import _stop
from plsearch.search.workers import pid_alive


def test_stopping_the_pool_ends_running_references_at_once():
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    job = pool.submit(time.sleep, 120)  # a reference that would train for minutes
    deadline = time.monotonic() + 60
    while not job.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    procs = list(pool._processes.values())
    assert job.running() and procs
    pids = [p.pid for p in procs]
    _stop(pool)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:  # the pid, not Process.is_alive:
        time.sleep(0.05)  # another test's child reaper can leave multiprocessing unable to see the exit
    assert not any(pid_alive(pid) for pid in pids)  # shutdown(wait=True) would have waited the 120 s
