"""examples/ run: the plug-in's block and metric keep the contracts, and the script searches end to end."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from plsearch.testing import check_block, check_metric

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example():
    name = "plsearch_plugin_custom_block_search"  # the name a space's imports: gives it
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / "custom_block_search.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_example_plugin_keeps_the_contracts():
    _load_example()
    check_block("dwsep", dims=(2,))
    check_metric("val_sens")


@pytest.mark.slow
def test_example_script_searches(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_block_search.py"), "--out", str(tmp_path / "r"), "--n-trials", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "r" / "trials.jsonl").is_file() and "| trial |" in out.stdout
