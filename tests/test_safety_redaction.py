"""Storage passwords holding any URL character are hidden on every printed surface: the header line, the
error line, logs, records and the results folder's marker, with no server, with a stand-in server
(SQLite behind a postgresql:// URL) and with a real PostgreSQL server (marker ``postgres``)."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from plsearch.redaction import redact, redact_url, remember_secrets

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "search_spaces" / "tiny.yaml")
HARD = ["p'a\"s s@:/%40w", "semi;colon#hash?q=1&x", "  lead and trail  ", "ümlaut€/\\back", "a@b@c:d"]
URL_CHARS = "abcXYZ019'\" @:/%?#&=+;,![]()$*~\\-_.ü"
SHELL = "postgresql://me:{pw}@127.0.0.1:{port}/db"


def _forms(pw: str) -> list[str]:
    return [f for f in {pw, quote(pw, safe="")} if len(f) >= 3]


def _leaks(text: str, pw: str) -> list[str]:
    return [f for f in _forms(pw) if f in text]


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=URL_CHARS, min_size=1, max_size=24), st.booleans())
def test_redact_url_hides_any_password(pw, escaped):
    assume(
        pw not in "postgresql://me:***@127.0.0.1:9/db"
        and quote(pw, safe="") not in "postgresql://me:***@127.0.0.1:9/db"
    )
    url = SHELL.format(pw=quote(pw, safe="") if escaped else pw, port=9)
    shown = redact_url(url)
    assert shown == "postgresql://me:***@127.0.0.1:9/db"
    assert not _leaks(shown, pw)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=URL_CHARS, min_size=3, max_size=24), st.booleans())
def test_a_remembered_url_is_hidden_in_any_text(pw, escaped):
    base = "postgresql://me:***@127.0.0.1:9/db storage error cannot connect password for user me"
    assume(not any(f in base for f in _forms(pw)) and pw.strip() == pw and len(set(pw)) > 1)
    url = SHELL.format(pw=quote(pw, safe="") if escaped else pw, port=9)
    remember_secrets(url)
    for text in (
        f"storage {url}: cannot connect",
        f"error: {url!r}",
        f"password {pw!r} for user me",
        f'{{"storage": "{url}"}}',
        f"could not connect with {quote(pw, safe='')}",
    ):
        assert not _leaks(redact(text), pw), text


def test_redact_keeps_text_without_secrets():
    assert redact("postgresql://db/x and a plain line") == "postgresql://db/x and a plain line"
    assert redact("postgresql://me@db/x?password=s3cret") == "postgresql://me@db/x?password=***"


def _run(main, argv, capsys, caplog=None):
    code = main(argv)
    out = capsys.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records) if caplog is not None else ""
    return code, out.out, out.err, logs


@pytest.mark.parametrize(
    "pw", [HARD[0], pytest.param(HARD[1], marks=pytest.mark.slow), pytest.param(HARD[2], marks=pytest.mark.slow)]
)
def test_no_server_header_error_and_logs(tmp_path, capsys, caplog, monkeypatch, pw):
    from plsearch.cli.report import main as report_main
    from plsearch.cli.search import main as search_main

    caplog.set_level(logging.INFO)
    url = SHELL.format(pw=quote(pw, safe=""), port=1)
    code, out, err, logs = _run(
        search_main,
        [
            "--space",
            TINY,
            "--storage",
            url,
            "--out",
            str(tmp_path / "o"),
            "--no-references",
            "--n-trials",
            "1",
            "--verbose",
        ],
        capsys,
        caplog,
    )
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "me:***@127.0.0.1" in out + err
    assert not _leaks(out + err + logs, pw)
    code, out, err, logs = _run(
        report_main, ["--storage", url, "--study", "x", "--out", str(tmp_path / "r")], capsys, caplog
    )
    assert code == 2 and not _leaks(out + err + logs, pw)
    monkeypatch.setenv("PLSEARCH_STORAGE", SHELL.format(pw=pw, port=1))  # raw, unescaped, from the environment
    code, out, err, logs = _run(
        search_main,
        ["--space", TINY, "--out", str(tmp_path / "e"), "--no-references", "--n-trials", "1"],
        capsys,
        caplog,
    )
    assert code == 2 and not _leaks(out + err + logs, pw)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("study.*"))


def _scan_files(folder: Path, pw: str) -> list[str]:
    bad = []
    for f in folder.rglob("*"):
        if f.is_file() and _leaks(f.read_bytes().decode("utf-8", errors="ignore"), pw):
            bad.append(str(f))
    return bad


@pytest.mark.slow  # a whole search with plots and a report: ~30 s on 2 cores
def test_stand_in_server_every_surface(tmp_path, capsys, caplog, monkeypatch):
    """A postgresql:// URL served by SQLite: a whole search and report run, nothing printed, logged or written
    shows the password."""
    import optuna

    import plsearch.search.storage as storage
    from plsearch.cli.report import main as report_main
    from plsearch.cli.search import main as search_main

    pw = HARD[0]
    db = tmp_path / "server.db"
    real = optuna.storages.RDBStorage

    class FakeRDB(real):  # type: ignore[misc,valid-type]
        def __init__(self, url, **kwargs):
            if str(url).startswith("postgresql://"):
                url, kwargs = f"sqlite:///{db}", {k: v for k, v in kwargs.items() if k != "engine_kwargs"}
            super().__init__(url, **kwargs)

    def fake_tables(spec):
        with sqlite3.connect(db) as c:
            return [r[0] for r in c.execute("select name from sqlite_master where type='table'")]

    monkeypatch.setattr(optuna.storages, "RDBStorage", FakeRDB)
    monkeypatch.setattr(storage, "_tables_rdb", fake_tables)
    caplog.set_level(logging.INFO)
    url = SHELL.format(pw=quote(pw, safe=""), port=5432)
    out_dir = tmp_path / "out"
    code, out, err, logs = _run(
        search_main,
        ["--space", TINY, "--storage", url, "--out", str(out_dir), "--no-references", "--n-trials", "1", "--verbose"],
        capsys,
        caplog,
    )
    assert code == 0, err
    assert "me:***@127.0.0.1:5432" in out and not _leaks(out + err + logs, pw)
    code, out2, err2, logs2 = _run(
        report_main, ["--storage", url, "--study", "tiny", "--out", str(tmp_path / "rep")], capsys, caplog
    )
    assert code == 0, err2
    assert not _leaks(out2 + err2 + logs2, pw)
    assert not _scan_files(out_dir, pw) and not _scan_files(tmp_path / "rep", pw)


@pytest.mark.postgres
@pytest.mark.slow
def test_real_server_every_surface(tmp_path, capsys, caplog):
    """PLSEARCH_TEST_POSTGRES_URL's server with a password of every URL character (the CI server trusts its
    local users, so the password is accepted whatever it is; a server that checks it skips this test)."""
    from sqlalchemy.engine import make_url

    from plsearch.cli.search import main as search_main

    base = os.environ.get("PLSEARCH_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PLSEARCH_TEST_POSTGRES_URL is not set (.ci/run starts a server and sets it)")
    pw = HARD[0]
    u = make_url(base)
    user, secret = quote(u.username or "", safe=""), quote(pw, safe="")
    url = f"{u.drivername}://{user}:{secret}@{u.host}:{u.port or 5432}/{u.database}"
    try:
        import psycopg

        psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=3).close()
    except Exception as e:  # noqa: BLE001 - the server checks passwords: nothing to test here
        pytest.skip(f"the test server does not accept another password ({type(e).__name__})")
    caplog.set_level(logging.INFO)
    name = f"redact_{os.getpid()}"
    code, out, err, logs = _run(
        search_main,
        [
            "--space",
            TINY,
            "--storage",
            url,
            "--study-name",
            name,
            "--out",
            str(tmp_path / "o"),
            "--no-references",
            "--n-trials",
            "1",
            "--verbose",
        ],
        capsys,
        caplog,
    )
    try:
        assert code == 0, err
        assert ":***@" in out and not _leaks(out + err + logs, pw)
        assert not _scan_files(tmp_path / "o", pw)
    finally:
        import optuna

        try:
            optuna.delete_study(study_name=name, storage=base)
        except KeyError:
            pass
