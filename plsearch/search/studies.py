"""Opening an existing study read-only: by storage and name, by results folder, or by ``StudyRef``.

What the report, confirm, artifacts and ``plsearch.load`` use to find a finished search; a search
itself opens (and creates) its study through ``plsearch.search.study``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plsearch.config.naming import StudyRef


class ReportError(ValueError):
    """The storage or study to report on does not exist."""


def load_study(storage: str | None = None, study_name: str | None = None, out_dir: str | Path | None = None) -> Any:
    """Open a study read-only-ish: ``storage`` URL (default ``<out>/study.db``) and ``study_name``
    (optional when the storage holds exactly one study)."""
    import optuna

    from plsearch.search.storage import StorageError, describe_error, open_storage, parse_storage

    if storage is None:
        if out_dir is None:
            raise ReportError("nothing to report on; pass --out DIR (holding study.db) or --storage URL --study NAME")
        db, journal = Path(out_dir) / "study.db", Path(out_dir) / "study.journal"
        if not db.is_file() and not journal.is_file():
            raise ReportError(f"{db} does not exist; pass the --out folder of a search or --storage URL")
        storage = str(journal) if journal.is_file() else f"sqlite:///{db.resolve()}"
    spec = parse_storage(storage, Path(out_dir or "."))
    try:
        store = open_storage(spec, create=False)  # a report never creates a storage
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    except StorageError:
        raise
    except Exception as e:  # SQLAlchemy errors of an existing but broken database
        raise ReportError(describe_error(spec, e)) from None
    if study_name is None:
        if len(names) != 1:
            raise ReportError(
                f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}); pick one with --study NAME"
            )
        study_name = names[0]
    if study_name not in names:
        raise ReportError(f"study {study_name!r} is not in the storage; choose one of {', '.join(names) or '(none)'}")
    return optuna.load_study(study_name=study_name, storage=store)


def open_study_ref(ref: StudyRef) -> Any:
    """The Optuna study a ``StudyRef`` (``--out`` / ``--storage`` / ``--study``) names."""
    return load_study(storage=ref.storage, study_name=ref.name, out_dir=ref.out)
