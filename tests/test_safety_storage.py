"""A storage is used only if it is empty or already an Optuna storage (looked at read-only, before Optuna
creates a table); a report never creates one. The file is byte-identical after a refusal."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from plsearch.search.storage import StorageError, StorageSpec, check_foreign, open_storage, parse_storage

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _foreign(tmp_path: Path) -> Path:
    db = tmp_path / "other_app.db"
    with sqlite3.connect(db) as c:
        c.execute("create table customers (id integer primary key, name text)")
        c.execute("insert into customers (name) values ('alice')")
    c.close()
    return db


def _spec(url: str, tmp_path: Path) -> StorageSpec:
    return parse_storage(url, tmp_path)


def test_foreign_sqlite_is_refused_unchanged(tmp_path):
    db = _foreign(tmp_path)
    before = _sha(db)
    for create in (True, False):
        with pytest.raises(StorageError, match="another application.*customers"):
            open_storage(_spec(f"sqlite:///{db}", tmp_path), create=create)
    assert _sha(db) == before


@pytest.mark.parametrize(
    "content, kind, match",
    [
        (b"my diary\nday 1\n", "journal", "not an Optuna journal"),
        (b'{"not": "a journal op"}\n', "journal", "not an Optuna journal"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "sqlite", "not an SQLite database"),
        (b"plain text that is not SQLite at all", "sqlite", "not an SQLite database"),
    ],
)
def test_files_that_are_not_storages_are_refused_unchanged(tmp_path, content, kind, match):
    f = tmp_path / ("x.journal" if kind == "journal" else "x.db")
    f.write_bytes(content)
    spec = _spec(str(f) if kind == "journal" else f"sqlite:///{f}", tmp_path)
    with pytest.raises(StorageError, match=match):
        open_storage(spec)
    assert f.read_bytes() == content


def test_empty_or_new_storages_are_used_and_optuna_ones_kept(tmp_path):
    import optuna

    empty = tmp_path / "empty.db"
    empty.touch()
    store = open_storage(_spec(f"sqlite:///{empty}", tmp_path))
    optuna.create_study(study_name="s", storage=store)
    check_foreign(_spec(f"sqlite:///{empty}", tmp_path), create=False)  # an Optuna storage now: fine for reports
    journal = tmp_path / "j.journal"
    optuna.create_study(study_name="s", storage=open_storage(_spec(str(journal), tmp_path)))
    check_foreign(_spec(str(journal), tmp_path), create=False)


def test_report_never_creates_a_storage_or_its_tables(tmp_path, capsys):
    from plsearch.cli.report import main as report_main

    empty = tmp_path / "empty.db"
    empty.touch()
    assert report_main(["--storage", f"sqlite:///{empty}", "--out", str(tmp_path / "r")]) == 2
    assert "holds no Optuna study" in capsys.readouterr().err
    assert empty.stat().st_size == 0
    assert report_main(["--storage", f"sqlite:///{tmp_path / 'missing.db'}", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "missing.db").exists() and "does not exist" in capsys.readouterr().err
    db = _foreign(tmp_path)
    before = _sha(db)
    assert report_main(["--storage", f"sqlite:///{db}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "another application" in err and len(err.strip().splitlines()) == 1
    assert _sha(db) == before


def test_search_refuses_a_foreign_sqlite_before_anything_is_written(tmp_path, capsys):
    from plsearch.cli.search import main as search_main

    db = _foreign(tmp_path)
    before = _sha(db)
    code = search_main(
        [
            "--space",
            TINY,
            "--storage",
            f"sqlite:///{db}",
            "--out",
            str(tmp_path / "R"),
            "--no-references",
            "--n-trials",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "another application" in err and len(err.strip().splitlines()) == 1
    assert _sha(db) == before
    assert not (tmp_path / "R").exists() or not any((tmp_path / "R").iterdir())
