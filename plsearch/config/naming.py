"""One way to name a study and a trial, for every CLI and library call. Imports no torch, no optuna.

A study is named by its results folder, ``--out results/NAME`` (the storage is the folder's own
``study.db`` / ``study.journal``), or by a storage and a name, ``--storage URL --study NAME`` (any
Optuna storage, e.g. PostgreSQL). A trial is its study plus a number: ``results/NAME:12``.

    p = Parser(...)
    add_study_args(p)                       # --out, --storage, --study
    add_trial_arg(p)                        # --trial results/NAME:12
    args = p.parse_args()
    study = study_ref(args)                 # StudyRef(out, storage, name)
    trial = args.trial                      # TrialRef(StudyRef(...), 12)

Study names are names, not paths: ``check_study_name`` refuses separators, ``..`` and empty names, so
``results/<name>`` never leaves ``results/``.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "NamingError",
    "StudyRef",
    "TrialRef",
    "check_study_name",
    "parse_trial_ref",
    "add_study_args",
    "add_trial_arg",
    "study_ref",
    "study_name_arg",
    "STORAGE_ENV",
    "RESULTS",
]

STORAGE_ENV = "PLSEARCH_STORAGE"
RESULTS = Path("results")  # where a study's folder goes when only a name is given
_BAD = re.compile(r"[/\\\x00-\x1f]")


class NamingError(ValueError):
    """A study or trial name is malformed; the message says what a valid one looks like."""


def check_study_name(name: Any) -> str:
    """``name`` if it is a usable study name: non-empty, no path separators, no ``..``, no control characters.

    Raises:
        NamingError: with the fix (a plain name such as ``ipl_epl``).
    """
    if not isinstance(name, str) or not name.strip():
        raise NamingError(f"study name {name!r} is empty; give a plain name such as ipl_epl")
    if _BAD.search(name) or ".." in name or name.strip() != name or name in (".",):
        raise NamingError(
            f"study name {name!r} is not a plain name (no '/', '\\', '..', control characters or "
            "surrounding spaces); give e.g. ipl_epl, and choose the folder with --out"
        )
    return name


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives and what it is called.

    Attributes:
        out: the results folder (tables, plots, and the study's own storage when ``storage`` is None).
        storage: an Optuna storage URL or journal path; None means the one in ``out``.
        name: the study name; None means "the only study in the storage".
    """

    out: Path | None = None
    storage: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            check_study_name(self.name)
        if self.out is None and not self.storage:
            raise NamingError("a study needs --out results/NAME or --storage URL --study NAME")

    @property
    def folder(self) -> Path:
        """The results folder: ``out``, else ``results/<name>``."""
        if self.out is not None:
            return Path(self.out)
        if self.name is None:
            raise NamingError("no results folder: pass --out DIR, or --study NAME so it is results/NAME")
        return RESULTS / self.name

    def with_name(self, name: str) -> "StudyRef":
        return replace(self, name=check_study_name(name))

    def __str__(self) -> str:  # never the storage URL: it may hold a password
        if self.out is not None:
            return str(self.out)
        return f"study {self.name or '(the only one)'} in --storage"


@dataclass(frozen=True)
class TrialRef:
    """Trial ``number`` of ``study`` (``results/NAME:12``)."""

    study: StudyRef
    number: int

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 0:
            raise NamingError(f"trial number {self.number!r} must be an integer >= 0")

    def __str__(self) -> str:
        return f"{self.study}:{self.number}"


def parse_trial_ref(text: str, *, storage: str | None = None, study: str | None = None) -> TrialRef:
    """``"results/NAME:12"`` -> ``TrialRef(StudyRef(out=results/NAME), 12)``.

    With ``storage`` (and ``study``) the part before the colon may be empty (``":12"`` or ``"12"``): the
    trial is then looked up in that storage. Raises ``NamingError`` naming the expected form.
    """
    text = str(text).strip()
    head, sep, number = text.rpartition(":")
    if not sep:
        head, number = "", text
    if not number.isdigit():
        raise NamingError(f"trial {text!r} is not FOLDER:NUMBER; write e.g. results/ipl_epl:12")
    if storage:
        ref = StudyRef(out=Path(head) if head else None, storage=storage, name=study)
    elif head:
        ref = StudyRef(out=Path(head), name=study)
    else:
        raise NamingError(
            f"trial {text!r} names no study; write e.g. results/ipl_epl:12 (or add --storage URL --study NAME)"
        )
    return TrialRef(ref, int(number))


def _trial_type(text: str) -> TrialRef:
    try:
        return parse_trial_ref(text)
    except NamingError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def study_name_arg(text: str) -> str:
    """argparse ``type=`` for a study name (``check_study_name``; a bad one is a usage error)."""
    try:
        return check_study_name(text)
    except NamingError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_study_args(parser: argparse.ArgumentParser, *, out_help: str | None = None, storage_env: bool = True) -> None:
    """Add ``--out DIR``, ``--storage URL`` and ``--study NAME`` (study names are checked as they parse)."""
    parser.add_argument(
        "--out",
        help=out_help
        or "the study's results folder, e.g. results/NAME (holds its "
        "study.db / study.journal unless --storage is given)",
    )
    env = f" [${STORAGE_ENV}]" if storage_env else ""
    parser.add_argument(
        "--storage",
        help="Optuna storage: PATH.journal, sqlite:///PATH.db or "
        f"postgresql://USER@HOST:PORT/DB (password in ~/.pgpass){env}",
    )
    parser.add_argument("--study", type=study_name_arg, help="study name in the storage (optional when it holds one)")


def add_trial_arg(parser: argparse.ArgumentParser, *, required: bool = False, flag: str = "--trial") -> None:
    """Add ``--trial results/NAME:N`` (parsed into a ``TrialRef``)."""
    parser.add_argument(
        flag, type=_trial_type, required=required, metavar="FOLDER:N", help="a search's trial, e.g. results/ipl_epl:12"
    )


def study_ref(
    args: argparse.Namespace, *, default_name: str | None = None, env: Mapping[str, str] | None = None
) -> StudyRef:
    """The ``StudyRef`` that ``--out/--storage/--study`` name (``$PLSEARCH_STORAGE`` when --storage is absent).

    ``default_name`` (e.g. the space's name) fills a missing ``--study`` and, without ``--out``, the
    folder ``results/<name>``. Raises ``NamingError`` when nothing names a study.
    """
    env = os.environ if env is None else env
    name = getattr(args, "study", None) or default_name
    storage = getattr(args, "storage", None) or env.get(STORAGE_ENV) or None
    out = getattr(args, "out", None)
    if name is not None:
        check_study_name(name)
    if out is None and storage is None and name is not None:
        out = RESULTS / name
    if out is None and storage is None:
        raise NamingError("nothing names a study; pass --out results/NAME or --storage URL --study NAME")
    return StudyRef(out=Path(out) if out is not None else None, storage=storage, name=name)
