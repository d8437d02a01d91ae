"""Where a study lives: resolve a ``--storage`` spec, open it with one-line errors, never show a password.

Specs (``--storage``, else the environment variable ``PLSEARCH_STORAGE``, else the out folder):

- nothing: the out folder's own study, ``<out>/study.journal`` if that exists, else ``<out>/study.db``
  (SQLite) for one worker; several workers get ``<out>/study.journal`` (a study in an existing
  ``study.db`` is copied into it once; ``study.db`` is left as it was);
- ``PATH.journal`` or ``PATH.log``: a journal file (``JournalStorage`` + ``JournalFileBackend``),
  which several processes on one machine share;
- ``sqlite:///PATH.db``: one process only (SQLite locks up under several writers);
- ``postgresql://USER[:PASSWORD]@HOST:PORT/DB`` (or ``mysql://``): ``RDBStorage``, shared by several
  machines; the only kind with heartbeats. Connecting gives up after ``CONNECT_TIMEOUT`` seconds; a connection
  lost later (the server restarts) is retried for ``RECONNECT_SECONDS``, then ``StorageError`` says "lost
  connection to the database".

``redact`` hides passwords in anything shown (``user:***@host``); every message here goes through it.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from plsearch.redaction import redact, redact_url, remember_secrets, url_secrets  # noqa: F401 (re-exported)

JOURNAL_SUFFIXES = (".journal", ".log")
ENV = "PLSEARCH_STORAGE"
CONNECT_TIMEOUT = 10
RECONNECT_SECONDS = 60  # how long storage calls retry a lost connection (a server restarting) before giving up


class StorageError(ValueError):
    """The storage cannot be used; the message names it (password hidden) and the fix."""


@dataclass(frozen=True)
class StorageSpec:
    """``kind``: ``sqlite`` | ``journal`` | ``rdb``; ``target``: the URL, or the journal file's absolute path."""

    kind: str
    target: str

    @property
    def shown(self) -> str:
        return redact_url(self.target)

    @property
    def shared(self) -> bool:
        """Several processes may write it at once."""
        return self.kind != "sqlite"

    @property
    def heartbeats(self) -> bool:
        return self.kind == "rdb"

    @property
    def path(self) -> Path | None:
        """The file holding the study (journal or SQLite), None for a database server."""
        if self.kind == "journal":
            return Path(self.target)
        if self.kind == "sqlite" and self.target.startswith("sqlite:///") and ":memory:" not in self.target:
            return Path(self.target[len("sqlite:///") :])
        return None


def parse_storage(spec: str | None, out_dir: str | Path, workers: int = 1) -> StorageSpec:
    """Resolve a ``--storage`` value (see the module doc); raises ``StorageError`` naming the fix."""
    out = Path(out_dir).resolve()
    spec = spec if spec else os.environ.get(ENV) or None
    if not spec:
        journal = out / "study.journal"
        if workers > 1 or journal.is_file():
            return StorageSpec("journal", str(journal))
        return StorageSpec("sqlite", f"sqlite:///{out / 'study.db'}")
    spec = spec.strip()
    remember_secrets(spec)  # from here on, nothing this process prints shows its password
    if "://" not in spec:
        if spec.endswith(JOURNAL_SUFFIXES):
            return StorageSpec("journal", str(Path(spec).expanduser().resolve()))
        raise StorageError(
            f"storage {redact(spec)!r} is not a database URL or journal file; use PATH.journal, "
            "sqlite:///PATH.db or postgresql://USER@HOST:PORT/DB"
        )
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "postgres":
        raise StorageError(
            f"storage {redact(spec)!r} uses the scheme postgres://, which SQLAlchemy does not know; "
            "write postgresql://..."
        )
    if scheme == "sqlite":
        kind = "sqlite"
    elif scheme.split("+")[0] in ("postgresql", "mysql", "mariadb", "oracle", "mssql"):
        kind = "rdb"
    else:
        raise StorageError(
            f"storage {redact(spec)!r} has an unknown scheme {scheme!r}; use PATH.journal, "
            "sqlite:///PATH.db or postgresql://USER@HOST:PORT/DB"
        )
    if kind == "sqlite" and workers > 1:
        raise StorageError(
            f"--workers {workers} cannot share the SQLite file {redact(spec)} (one writer only); "
            "use --storage PATH.journal on one machine or postgresql://... across machines"
        )
    return StorageSpec(kind, spec)


def open_storage(spec: StorageSpec, *, heartbeat: tuple[int, int] | None = None, create: bool = True) -> Any:
    """An Optuna storage for ``spec``. ``heartbeat``: ``(interval, grace)`` seconds (RDB only).

    ``create=False`` refuses a journal or SQLite file that does not exist (reports never create one).
    Raises ``StorageError`` with one line: which storage (password hidden), what failed, the fix.
    """
    import optuna

    path = spec.path
    if path is not None:
        if not create and not path.is_file():
            raise StorageError(
                f"storage file {path} does not exist; pass the --out folder of a search or an existing --storage"
            )
        if not path.parent.is_dir():
            raise StorageError(f"the folder of storage file {path} does not exist; create it or choose another path")
    check_foreign(spec, create=create)
    if spec.kind == "journal":
        from plsearch.search.optuna_private import journal_storage  # a lock the kernel frees when its holder dies

        try:
            return journal_storage(str(path))
        except (OSError, ValueError) as e:
            raise StorageError(
                f"cannot open journal file {path} ({e}); check that it is a journal and writable"
            ) from None
    kwargs: dict[str, Any] = {"engine_kwargs": {"pool_pre_ping": True}}
    if spec.kind == "rdb":
        if spec.target.lower().startswith(("postgresql", "mysql", "mariadb")):
            kwargs["engine_kwargs"]["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        if heartbeat:
            kwargs.update(heartbeat_interval=int(heartbeat[0]), grace_period=int(heartbeat[1]))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat_interval is "experimental" since Optuna 2.9
            if spec.kind == "rdb":  # a server restart is ridden out: calls retry, then one line
                from plsearch.search.optuna_private import retrying_rdb_storage

                return retrying_rdb_storage(
                    spec.target, patience=RECONNECT_SECONDS, give_up=lambda e: lost_connection(spec, e), **kwargs
                )
            return optuna.storages.RDBStorage(spec.target, **kwargs)
    except Exception as e:  # SQLAlchemy raises its own hierarchy; psycopg, ValueError, ImportError...
        raise StorageError(describe_error(spec, e)) from None


_OPTUNA_TABLES = {"studies", "trials", "version_info"}


def _tables_sqlite(path: Path) -> list[str]:
    """Table names of an SQLite file, opened read-only (raises StorageError if it is not SQLite)."""
    import sqlite3

    with open(path, "rb") as f:
        head = f.read(16)
    if head and head != b"SQLite format 3\x00":
        raise StorageError(
            f"storage file {path} is not an SQLite database; plsearch uses only an empty file or an "
            "Optuna storage: pass another --storage"
        )
    if not head:
        return []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StorageError(f"storage file {path} cannot be read as SQLite ({e}); pass another --storage") from None


def _tables_rdb(spec: StorageSpec) -> list[str]:
    """Table names of a database server's default schema (read-only; connection errors become StorageError)."""
    import sqlalchemy

    kwargs: dict[str, Any] = {}
    if spec.target.lower().startswith(("postgresql", "mysql", "mariadb")):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        engine = sqlalchemy.create_engine(spec.target, **kwargs)
        try:
            return list(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception as e:  # noqa: BLE001 - driver missing, bad URL, cannot connect: one line
        raise StorageError(describe_error(spec, e)) from None


def check_foreign(spec: StorageSpec, *, create: bool = True) -> None:
    """Refuse a storage that is neither empty nor an Optuna storage, looking before Optuna creates any table.

    ``create=False`` (reports) also refuses an empty one: nothing is created there.
    """
    fix = "plsearch uses only an empty storage or an Optuna one: pass another --storage"
    path = spec.path
    if spec.kind == "journal":
        if path is not None and path.is_file() and path.stat().st_size:
            import json

            with open(path, "rb") as f:
                first = f.readline(1 << 16)
            try:
                ok = isinstance(json.loads(first), dict) and "op_code" in json.loads(first)
            except ValueError:  # a first line still being written by another worker is no evidence
                ok = not first.endswith(b"\n") and first.lstrip().startswith(b"{")
            if not ok:
                raise StorageError(f"storage file {path} is not an Optuna journal; {fix}")
        return
    if spec.kind == "sqlite":
        if path is None or not path.exists():
            return
        if path.is_dir():
            raise StorageError(f"storage {path} is a folder; pass a file path, e.g. sqlite:///{path}/study.db")
        tables = _tables_sqlite(path)
    else:
        tables = _tables_rdb(spec)
    if tables and "studies" not in tables:
        shown = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
        raise StorageError(f"storage {spec.shown} holds tables of another application ({shown}); {fix}")
    if not tables and not create:
        raise StorageError(f"storage {spec.shown} holds no Optuna study; pass the storage a search wrote")


def describe_error(spec: StorageSpec, e: BaseException) -> str:
    """One line for an exception raised while opening or using ``spec`` (password hidden)."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    first = re.sub(r"^\([\w.]+\)\s*", "", first)  # "(psycopg.OperationalError) ..."
    name, shown = type(e).__name__, spec.shown
    if isinstance(e, ImportError) or name == "NoSuchModuleError":
        why = f"its database driver is missing ({first}); install it, e.g. pip install 'plsearch[postgres]'"
    elif name == "ArgumentError" or (isinstance(e, ValueError) and "invalid literal" in first):
        why = f"it is not a valid URL ({first}); write e.g. postgresql://USER@HOST:5432/DB"
    elif name in ("OperationalError", "InterfaceError") and spec.kind == "sqlite":
        why = f"SQLite cannot open it ({first}); check the path and that its folder is writable"
    elif name in ("OperationalError", "InterfaceError", "ProgrammingError"):
        why = (
            f"cannot connect ({first}); check host, port, user, password (or ~/.pgpass) and that the "
            "database server is running"
        )
    else:
        why = f"{name}: {first}; check the storage"
    return redact(f"storage {shown}: {why}", spec.target)


def lost_connection(spec: StorageSpec, e: BaseException) -> StorageError:
    """The one-line error for a database connection lost for longer than ``RECONNECT_SECONDS``."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    first = re.sub(r"^\([\w.]+\)\s*", "", first)
    return StorageError(
        redact(
            f"storage {spec.shown}: lost connection to the database for {RECONNECT_SECONDS}s ({first}); check "
            "that the database server is running and rerun the same command to resume",
            spec.target,
        )
    )


@contextlib.contextmanager
def claim_lock(spec: StorageSpec) -> Iterator[None]:
    """Serialise "count trials, ask one, tag it" among the processes of this machine (file storages).

    Database servers get no lock: the runner trims the rare surplus trial after asking instead.
    """
    path = spec.path
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None  # type: ignore[assignment]
    if path is None or fcntl is None:
        yield
        return
    with open(f"{path}.plsearch-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def copy_sqlite_into_journal(out_dir: str | Path, study_name: str, journal: StorageSpec) -> int:
    """Copy study ``study_name`` from ``<out>/study.db`` into the (new) journal; returns the trials copied.

    Done once, when a search that ran with one worker is resumed with several; ``study.db`` is not changed.
    """
    import optuna

    db = Path(out_dir).resolve() / "study.db"
    target = Path(journal.target)
    if target.exists() or not db.is_file():
        return 0
    source = open_storage(StorageSpec("sqlite", f"sqlite:///{db}"), create=False)
    if study_name not in {s.study_name for s in optuna.get_all_study_summaries(source, include_best_trial=False)}:
        return 0
    tmp = target.with_name(target.name + ".copying")
    tmp.unlink(missing_ok=True)
    optuna.copy_study(
        from_study_name=study_name, from_storage=source, to_storage=open_storage(StorageSpec("journal", str(tmp)))
    )
    os.replace(tmp, target)
    Path(f"{tmp}.flock").unlink(missing_ok=True)
    return len(optuna.load_study(study_name=study_name, storage=source).get_trials(deepcopy=False))
