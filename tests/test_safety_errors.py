"""Issue 27, bullet 6: one line for every error class that reaches a CLI. Sampler options are checked like
config fields (not an Optuna traceback at study creation); a plug-in that raises at import is one line naming it
and its error (the traceback only with ``--debug`` or ``PLSEARCH_DEBUG=1``) and leaves nothing cached; a resume
on a read-only results folder names the cause instead of Optuna's "invalid data in the commit"."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch

from plsearch.cli.search import main as search_main
from plsearch.search.space import SearchSpaceError, load_space

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "search_spaces" / "tiny.yaml"
SEARCH = ["--no-references", "--no-plots", "--n-trials", "1", "--workers", "1", "--device", "cpu"]
PLUGIN = """
from plsearch.config.registry import register_block
from plsearch.nn.blocks import Block


@register_block("half_loaded_{tag}")
class HalfLoaded(Block):
    pass


raise RuntimeError("the plug-in is broken")
"""


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _space(tmp_path: Path, sampler: str = "{name: tpe, n_startup_trials: 2}", imports: str = "") -> Path:
    text = TINY.read_text().replace("sampler: {name: tpe, n_startup_trials: 2}", f"sampler: {sampler}")
    assert f"sampler: {sampler}" in text
    path = tmp_path / "space.yaml"
    path.write_text(text + (f"\nimports: {imports}\n" if imports else ""))
    return path


def _one_line(capsys, code: int, *match: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for m in match:
        assert m.lower() in lines[0].lower(), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- sampler options
@pytest.mark.parametrize(
    "sampler, match",
    [
        ("{name: tpe, n_startup_trials: -1}", "sampler.n_startup_trials=-1 must be an integer >= 0"),
        ("{name: tpe, n_startup_trials: x}", "sampler.n_startup_trials='x' must be an integer"),
        ("{name: tpe, n_startup_trials: 2.5}", "sampler.n_startup_trials=2.5 must be an integer"),
        ("{name: tpe, multivariate: maybe}", "sampler.multivariate='maybe' must be true or false"),
        ("{name: tpe, n_ei_candidates: 0}", "sampler.n_ei_candidates=0 must be an integer >= 1"),
        ("{name: tpe, prior_weight: -1.0}", "sampler.prior_weight=-1.0 must be >= 0"),
        ("{name: tpe, gamma: x}", "sampler.gamma takes a Python object"),
        ("{name: nsga2, population_size: 1}", "sampler.population_size=1 must be an integer >= 2"),
        ("{name: nsga2, crossover_prob: 1.5}", "sampler.crossover_prob=1.5 must be in [0, 1]"),
        ("{name: tpe, bogus: 1}", "unknown option(s) bogus"),
    ],
)
def test_sampler_options_are_checked_like_config_fields(tmp_path, capsys, sampler, match):
    space = _space(tmp_path, sampler)
    with pytest.raises(SearchSpaceError, match="sampler"):
        load_space(space)
    out = tmp_path / "res"
    _one_line(capsys, search_main(["--space", str(space), *SEARCH, "--out", str(out)]), match)
    assert not out.exists()


def test_good_sampler_options_still_load(tmp_path):
    space = load_space(_space(tmp_path, "{name: tpe, n_startup_trials: 0, multivariate: true, prior_weight: 2}"))
    assert dict(space.sampler_options) == {"n_startup_trials": 0, "multivariate": True, "prior_weight": 2.0}


@pytest.mark.parametrize("pruning", ["{n_startup_trials: -1}", "{n_startup_trials: x}", "{name: asha, eta: x}"])
def test_pruner_options_are_checked_like_config_fields(tmp_path, pruning):
    text = (
        _space(tmp_path)
        .read_text()
        .replace("pruning: {enabled: true, n_startup_trials: 1, n_warmup_epochs: 1}", f"pruning: {pruning}")
    )
    (tmp_path / "space.yaml").write_text(text)
    with pytest.raises(SearchSpaceError, match="pruning"):
        load_space(tmp_path / "space.yaml")


# ----------------------------------------------------------------------------- plug-ins
def test_a_plugin_that_raises_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PLSEARCH_DEBUG", raising=False)
    (tmp_path / "broken_plugin.py").write_text(PLUGIN.format(tag="cli"))
    space = _space(tmp_path, imports="[broken_plugin.py]")
    code = search_main(["--space", str(space), *SEARCH, "--out", str(tmp_path / "res")])
    line = _one_line(capsys, code, "broken_plugin.py", "RuntimeError: the plug-in is broken", "line 11", "--debug")
    assert "Traceback" not in line and not (tmp_path / "res").exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_above_the_line(tmp_path, capsys, monkeypatch, how):
    (tmp_path / "broken_plugin.py").write_text(PLUGIN.format(tag=f"debug_{how}"))
    space = _space(tmp_path, imports="[broken_plugin.py]")
    argv = ["--space", str(space), *SEARCH, "--out", str(tmp_path / "res")]
    if how == "flag":
        monkeypatch.delenv("PLSEARCH_DEBUG", raising=False)
        argv.append("--debug")
    else:
        monkeypatch.setenv("PLSEARCH_DEBUG", "1")
    assert search_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: the plug-in is broken" in err
    assert err.strip().splitlines()[-1].startswith("error: imports: plug-in 'broken_plugin.py'")


def test_a_failed_plugin_file_leaves_nothing_cached(tmp_path):
    from plsearch.config.registry import list_blocks

    (tmp_path / "broken_plugin.py").write_text(PLUGIN.format(tag="file"))
    space = _space(tmp_path, imports="[broken_plugin.py]")
    for _ in range(2):  # the second load fails the same way: it is not taken for loaded
        with pytest.raises(SearchSpaceError, match="RuntimeError: the plug-in is broken"):
            load_space(space)
        assert "plsearch_plugin_broken_plugin" not in sys.modules
        assert "half_loaded_file" not in list_blocks()


def test_a_failed_plugin_module_leaves_nothing_cached(tmp_path, monkeypatch):
    from plsearch.config.registry import list_blocks

    pkg = tmp_path / "site" / "brokenpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(PLUGIN.format(tag="module"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    space = _space(tmp_path, imports="[brokenpkg.blocks]")
    for _ in range(2):
        with pytest.raises(SearchSpaceError, match="plug-in 'brokenpkg.blocks' raised RuntimeError"):
            load_space(space)
        assert "brokenpkg.blocks" not in sys.modules
        assert "half_loaded_module" not in list_blocks()
    (tmp_path / "site" / "brokenpkg" / "blocks.py").write_text("import no_such_module_here\n")
    with pytest.raises(SearchSpaceError, match="raised ModuleNotFoundError: No module named 'no_such_module_here'"):
        load_space(space)
    (tmp_path / "space2.yaml").write_text(_space(tmp_path).read_text() + "\nimports: [no_such_pkg.blocks]\n")
    with pytest.raises(SearchSpaceError, match="cannot import 'no_such_pkg.blocks'"):
        load_space(tmp_path / "space2.yaml")


# ----------------------------------------------------------------------------- read-only results
@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("readonly") / "res"
    assert search_main(["--space", str(TINY), *SEARCH, "--out", str(out)]) == 0
    return out


def _tree(root: Path) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()}


def test_a_resume_on_a_results_folder_without_write_permission_names_it(searched, tmp_path, capsys, monkeypatch):
    import os

    out = tmp_path / "res"
    shutil.copytree(searched, out)
    before = _tree(out)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == out else real(p, mode, **kw))
    code = search_main(["--space", str(TINY), *SEARCH, "--n-trials", "2", "--out", str(out)])
    _one_line(capsys, code, "is read-only", str(out), "--out COPY")
    assert _tree(out) == before


def test_a_resume_on_a_read_only_study_file_names_the_cause(searched, tmp_path, capsys, monkeypatch):
    """A read-only file system (or a root-owned study.db) fails at Optuna's first commit: the line says
    read-only, not Optuna's "invalid data in the commit"."""
    import optuna

    import plsearch.search.runner as runner

    out = tmp_path / "res"
    shutil.copytree(searched, out)
    before = _tree(out)

    def read_only(spec, heartbeat=None):  # the real SQLite file, opened the way a read-only mount behaves
        return optuna.storages.RDBStorage(f"sqlite:///file:{spec.path}?mode=ro&uri=true")

    monkeypatch.setattr(runner, "open_storage", read_only)
    code = search_main(["--space", str(TINY), *SEARCH, "--n-trials", "2", "--out", str(out)])
    line = _one_line(capsys, code, "read-only", "attempt to write a readonly database", "--out COPY")
    assert "invalid data" not in line
    assert {k: v for k, v in _tree(out).items() if "study.db" in k} == {
        k: v for k, v in before.items() if "study.db" in k
    }
