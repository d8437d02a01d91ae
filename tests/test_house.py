"""The house rules, held by an AST scan: layers are packages, the CLI has one front door, and only entry shims
(a package's ``__main__.py``, or a top-level module of at most three lines) import it."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "plsearch"
VERBS = ("search", "train", "evaluate", "predict", "profile", "export", "report", "confirm", "fidelity", "table")
VERBS += ("runs",)


def _imports(path: Path) -> list[str]:
    """Every module a file imports (absolute imports, any depth), plus string arguments of importlib/runpy calls."""
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name.endswith(("import_module", "run_module", "__import__", "run_path", "import_path")):
                found += [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return found


def _is_shim(path: Path) -> bool:
    lines = [x for x in path.read_text().splitlines() if x.strip()]
    return path.name == "__main__.py" or (path.parent == PKG and len(lines) <= 3)


def test_only_entry_shims_import_the_cli() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        if PKG / "cli" in path.parents:
            continue
        if any(m == "plsearch.cli" or m.startswith("plsearch.cli.") for m in _imports(path)) and not _is_shim(path):
            offenders.append(str(path.relative_to(PKG)))
    assert offenders == []


def test_shims_are_three_lines_that_call_the_cli() -> None:
    shims = [p for p in PKG.glob("*.py") if p.name != "__init__.py" and _is_shim(p)] + list(PKG.rglob("__main__.py"))
    assert {p.stem for p in PKG.glob("*.py") if _is_shim(p)} >= set(VERBS) - {"search", "train", "report"}
    for p in shims:
        lines = [x for x in p.read_text().splitlines() if x.strip()]
        assert len(lines) <= 3, p
        assert any(m.startswith("plsearch.cli") for m in _imports(p)), p


def test_at_most_eight_modules_at_the_top() -> None:
    modules = [p.name for p in PKG.glob("*.py") if not _is_shim(p)]
    assert len(modules) <= 8, modules
    packages = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").is_file())
    for name in packages:  # each package says what lives in it: one line per module
        doc = ast.get_docstring(ast.parse((PKG / name / "__init__.py").read_text())) or ""
        for mod in (PKG / name).glob("*.py"):
            if mod.name not in ("__init__.py", "__main__.py"):
                assert f"``{mod.stem}``" in doc, f"plsearch/{name}/__init__.py does not name {mod.stem}"


def test_the_front_door_lists_every_verb(capsys) -> None:
    from plsearch.cli.main import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {v} " in out for v in VERBS)
    assert main(["no-such-verb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown verb" in err[0]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_answers_help_through_both_doors(verb, capsys, monkeypatch) -> None:
    from plsearch.cli.main import main

    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", [f"plsearch.{verb}", "--help"])
    with pytest.raises(SystemExit) as e:  # python -m plsearch.VERB: the entry shim
        runpy.run_module(f"plsearch.{verb}", run_name="__main__", alter_sys=False)
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


def test_the_public_surface_is_listed_once_and_resolves() -> None:
    import plsearch

    assert sorted(plsearch.__all__) == sorted(plsearch._LAZY)  # one list
    for name in plsearch.__all__:
        assert getattr(plsearch, name) is not None
    assert {"PLNet", "create_model", "list_models", "preset_config", "estimate", "build_wiring", "load"} <= set(
        plsearch.__all__
    )
    assert {n for n in plsearch.__all__ if n.startswith("register_")} >= {
        "register_block",
        "register_metric",
        "register_sampler",
        "register_pruner",
        "register_preset",
    }


def _fit_calls(source: str) -> list[int]:
    """Lines of ``source`` that call the training loop ``plsearch.train.fit.fit``, under any name it was imported as
    (``from plsearch.train.fit import fit as f``; ``import plsearch.train.fit as m`` then ``m.fit(...)``)."""
    tree = ast.parse(source)
    names: set[str] = set()  # local names of the function
    modules: set[str] = set()  # dotted names of the module ``plsearch.train.fit``
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if node.module == "plsearch.train.fit" and a.name == "fit":
                    names.add(a.asname or a.name)
                elif node.module == "plsearch.train" and a.name == "fit":
                    modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "plsearch.train.fit":
                    modules.add(a.asname or a.name)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id in names) or (
                isinstance(func, ast.Attribute) and func.attr == "fit" and ast.unparse(func.value) in modules
            ):
                lines.append(node.lineno)
    return lines


def test_one_way_to_run_a_config() -> None:
    """``plsearch.train.run.run_config`` is the only caller of the training loop: the train CLI, search trials and
    references, and the run queue (confirm, fidelity, the truth table) all train through it."""
    callers = {
        str(p.relative_to(PKG)): lines for p in sorted(PKG.rglob("*.py")) if (lines := _fit_calls(p.read_text()))
    }
    assert list(callers) == ["train/run.py"], callers
    probe = "from plsearch.train.fit import fit as f\nimport plsearch.train.fit as m\nf(1)\nm.fit(2)\nmodel.fit(3)\n"
    assert _fit_calls(probe) == [3, 4]  # the scan sees through aliases, and a method named fit is not the loop
