"""Naming a study and a trial: --out / --storage / --study, results/NAME:12, study names are names."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from plsearch.config.naming import (
    NamingError,
    StudyRef,
    TrialRef,
    add_study_args,
    add_trial_arg,
    check_study_name,
    parse_trial_ref,
    study_ref,
)


@pytest.mark.parametrize("name", ["ipl_epl", "tiny-2", "a.b", "run 1"])
def test_plain_names_pass(name):
    assert check_study_name(name) == name


@pytest.mark.parametrize("name", ["", " ", "a/b", "..", "../x", "a\\b", "x..y", "a\nb", None, 3, " x"])
def test_paths_and_empties_refused(name):
    with pytest.raises(NamingError):
        check_study_name(name)


def test_parse_trial_ref():
    ref = parse_trial_ref("results/tiny:12")
    assert ref == TrialRef(StudyRef(out=Path("results/tiny")), 12)
    assert str(ref) == "results/tiny:12"
    on_db = parse_trial_ref("7", storage="postgresql://u@h/db", study="s")
    assert (on_db.number, on_db.study.storage, on_db.study.name, on_db.study.out) == (
        7,
        "postgresql://u@h/db",
        "s",
        None,
    )
    assert "postgresql" not in str(on_db)  # a storage URL may hold a password
    for bad in ("results/tiny", "results/tiny:x", ":3", "results/tiny:-1"):
        with pytest.raises(NamingError):
            parse_trial_ref(bad)


def _parser():
    p = argparse.ArgumentParser()
    add_study_args(p)
    add_trial_arg(p)
    return p


def test_study_ref_from_args():
    p = _parser()
    assert study_ref(p.parse_args(["--out", "results/x"]), env={}) == StudyRef(out=Path("results/x"))
    ref = study_ref(p.parse_args([]), default_name="tiny", env={})
    assert ref.folder == Path("results/tiny") and ref.name == "tiny"
    ref = study_ref(p.parse_args(["--storage", "x.journal", "--study", "s"]), env={})
    assert (ref.out, ref.storage, ref.name) == (None, "x.journal", "s")
    assert study_ref(p.parse_args(["--out", "o"]), env={"PLSEARCH_STORAGE": "y.journal"}).storage == "y.journal"
    with pytest.raises(NamingError):
        study_ref(p.parse_args([]), env={})
    with pytest.raises(SystemExit):
        p.parse_args(["--study", "../etc"])
    assert _parser().parse_args(["--trial", "results/a:3"]).trial.number == 3


def test_search_cli_refuses_a_path_as_study_name(capsys, tmp_path):
    from plsearch.cli.search import main

    space = tmp_path / "s.yaml"
    space.write_text("name: ../escape\nmodel.steps: {low: 1, high: 2}\n")
    for argv in (["--space", "search_spaces/tiny.yaml", "--study", "../x"], ["--space", str(space)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "not a plain name" in err and err.count("\n") == 1
    assert not (tmp_path.parent / "escape").exists()
