"""Who may write where: the one rule every plsearch writer follows, so nothing a user points at is damaged.

The rule (README, "What plsearch writes"):

- A **results folder** belongs to one study. Search, report, confirm and the artifact store each write
  their own files or subfolders there. The folder records its study in a marker file
  (``.plsearch.json``); another study's writes are refused unless the user passes ``--force``.
  Results folders of earlier plsearch versions (no marker) are adopted when what they hold belongs to
  the same study, or when nothing in them says otherwise.
- A **run folder** belongs to its training run; evaluate writes its own ``eval_<split>`` subfolder in it.
- **predict and export own their --out**: they write only names they wrote before (listed in the marker)
  or names that do not exist yet.
- Every command: never writes into the input data it reads, never over a file it did not write, never
  two outputs onto one name. Before anything is written, every destination (``--out``, ``--artifacts``, a
  storage file, a table's folder) is checked against every input by ``check_out``:

  - a data folder (``--data``, ``--input``, or ``data.root`` of a space, a config, a run or ``--set``):
    a destination equal to it or inside it is refused; one that holds it is refused for writers that
    make folders of their own in their destination (search, confirm, fidelity, table, artifact stores:
    ``contains_inputs=False``);
  - an input file (``--input x.jpg``): a destination equal to it, or equal to its folder (outputs beside
    the inputs, ``x.png`` beside ``x.jpg``), is refused;
  - a checkpoint (``owned``) in a folder another command owns (a plsearch marker, or a run's
    ``config.yaml``/``log.jsonl``): a destination equal to the checkpoint or to that folder, or a file
    written straight into it, is refused; a subfolder of its own (``eval_test/``) is fine.

  Paths are compared both resolved (a symlink to the data or into it is the data) and as written.

Functions (all raise ``OutputError``, a ``ValueError`` whose message is one line with the fix):

- ``check_out(out, inputs=..., owned=...)``: the rule above, plus: an --out that is an existing file is
  refused (``need_dir``). Touches nothing. ``check_outs`` checks several destinations of one command.
- ``named_data(...)``: the data folders that flags, ``--set`` values, configs and spaces name.
- ``claim_results(out, study_name, storage=..., force=...)``: create or adopt a results folder for one study.
- ``claim_folder(out, kind, targets=..., force=...)``: create or adopt a folder of ``kind`` ("predict",
  "export", "run", "eval", "confirm", ...) and refuse ``targets`` that exist but were not written by plsearch.
- ``record_written(out, names)``: add names to the marker once written (so a rerun may replace them).
- ``unique_names(files, suffix)``: one output name per input, never two on one name.
- ``safe_child(out, name)``: ``out/name`` for a user-given name, refused if it leaves ``out``.
- ``atomic_file(path)``: write a file through ``<path>.tmp`` and ``os.replace``; a failed write leaves the old
  file and no ``.tmp``, and a full disk raises ``DiskFullError`` (one line naming the file and the fix).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = ".plsearch.json"
# What a search/report writes in its results folder (earlier versions wrote the same names, no marker).
RESULTS_FILES = (
    "study.db",
    "study.journal",
    "trials.jsonl",
    "pareto.csv",
    "pareto.md",
    "pareto",
    "references.json",
    "pareto.png",
    "history.png",
    "hypervolume.png",
    "importances.png",
)
RUN_FILES = ("config.yaml", "log.jsonl", "best.pt", "last.pt", "curves.png", "metrics.json")

__all__ = [
    "MARKER",
    "RESULTS_FILES",
    "RUN_FILES",
    "DiskFullError",
    "OutputError",
    "atomic_file",
    "disk_full",
    "check_out",
    "check_outs",
    "claim_folder",
    "claim_results",
    "named_data",
    "plan_outputs",
    "read_marker",
    "record_written",
    "safe_child",
    "unique_names",
]


class OutputError(ValueError):
    """An output would damage something plsearch does not own; the message says what and the fix."""


class DiskFullError(OutputError):
    """A write found no space left (``ENOSPC``, or the user's quota, ``EDQUOT``); nothing half-written is left."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def disk_full(e: BaseException, path: str | Path) -> DiskFullError | None:
    """The one-line ``DiskFullError`` for ``e`` when it is an ``OSError`` of a full disk, else None."""
    if not isinstance(e, OSError) or e.errno not in DISK_FULL_ERRNOS:
        return None
    return DiskFullError(
        f"the disk is full: writing {path} failed ({e.strerror or 'no space left on device'}); free space or "
        "choose another --out, then rerun"
    )


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield ``<path>.tmp`` to write; on success it replaces ``path`` (``os.replace``: readers see the old file
    or the new one, never half). On any error the temp file is removed and ``path`` is left as it was; an
    ``OSError`` of a full disk becomes ``DiskFullError``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        full = disk_full(e, path)
        if full is not None:
            raise full from None
        raise


def _resolve(p: str | Path) -> Path:
    return Path(p).expanduser().resolve()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _forms(p: str | Path) -> set[Path]:
    """``p`` as the file system sees it (symlinks resolved) and as written (absolute, ``..`` folded)."""
    import os

    q = Path(p).expanduser()
    return {q.resolve(), Path(os.path.abspath(q))}


def _owner(folder: Path) -> str | None:
    """The command that owns ``folder`` (its marker's kind; ``run`` for a run folder of an earlier version)."""
    marker = read_marker(folder)
    if marker is not None:
        return str(marker.get("kind") or "plsearch")
    if (folder / "config.yaml").is_file() or (folder / "log.jsonl").is_file():
        return "run"
    return None


def check_out(
    out: str | Path,
    *,
    inputs: Iterable[str | Path | None] = (),
    owned: Iterable[str | Path | None] = (),
    flag: str = "--out",
    need_dir: bool = True,
    contains_inputs: bool = True,
) -> Path:
    """The resolved ``out``, or ``OutputError`` if writing there could damage an input (the module's rule).

    ``inputs``: what the command reads: data folders (``out`` equal to or inside one is refused; one that
    holds it too, with ``contains_inputs=False``) and input files (``out`` equal to one or to its folder is
    refused). ``owned``: checkpoints; ``out`` equal to one, to its folder when another command owns that
    folder, or (``need_dir=False``: ``out`` is a file) a file straight in that folder is refused.
    ``need_dir``: ``out`` is a folder, so an existing file there is refused. Creates nothing.
    """
    path = _resolve(out)
    if need_dir and path.exists() and not path.is_dir():
        raise OutputError(
            f"{flag} {out} is an existing file, not a folder; pass a folder path (a new one, or "
            "one plsearch wrote before)"
        )
    outs = _forms(out)
    fix = f"choose an {flag} outside it"
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        src = _resolve(inp)
        if src in outs:
            raise OutputError(f"{flag} {out} is the input {inp}; plsearch never writes into data it reads: {fix}")
        if src.is_file():  # outputs beside an input file would mix with it (x.png beside x.jpg)
            if any(o == f.parent for o in outs for f in _forms(inp)):
                raise OutputError(
                    f"{flag} {out} holds the input {inp} (it is that file's folder); plsearch never writes "
                    f"beside the files it reads: {fix}"
                )
            continue
        folders = _forms(inp)
        if any(_inside(o, f) for o in outs for f in folders):
            raise OutputError(
                f"{flag} {out} is inside the input {inp}; plsearch never writes into data it reads: {fix}"
            )
        if not contains_inputs and any(_inside(f, o) for o in outs for f in folders):
            raise OutputError(
                f"{flag} {out} holds the input {inp}; it writes folders of its own there: choose an "
                f"{flag} that does not contain the data"
            )
    for ck in owned:
        if ck is None or str(ck) == "":
            continue
        src = _resolve(ck)
        if src in outs and not src.is_dir():
            raise OutputError(f"{flag} {out} is the checkpoint {ck} itself; choose another {flag}")
        home, shown = (src, Path(ck)) if src.is_dir() else (src.parent, Path(ck).parent)  # a run folder, or a file's
        owner = _owner(home)
        if owner is None:
            continue
        written = outs if need_dir else {o.parent for o in outs}
        if home in written:
            what = f"a subfolder of its own (e.g. {shown / 'out'})" if need_dir else "a file outside it"
            raise OutputError(
                f"{flag} {out} writes into {shown}, the {owner} folder of the checkpoint {ck}, which another "
                f"command owns; choose {what}"
            )
    return path


def check_outs(
    inputs: Iterable[str | Path | None],
    folders: dict[str, str | Path | None] | None = None,
    files: dict[str, str | Path | None] | None = None,
    *,
    contains_inputs: bool = False,
) -> None:
    """``check_out`` of each destination of one command: ``{flag: folder}`` and ``{flag: file}`` (None: not
    given) against the same ``inputs``, before anything is written."""
    inputs = list(inputs)
    for flag, where in (folders or {}).items():
        if where is not None and str(where) != "":
            check_out(where, inputs=inputs, flag=flag, contains_inputs=contains_inputs)
    for flag, where in (files or {}).items():
        if where is not None and str(where) != "":
            check_out(where, inputs=inputs, flag=flag, need_dir=False)


def named_data(*sources: Any) -> list[str]:
    """The data folders ``sources`` name, for ``check_out(inputs=...)``: a path (``--data``); a mapping's
    ``data.root`` (or bare ``root``: ``--set`` values, a space's fixed values); ``data.root`` of a
    ``RunConfig`` or ``root`` of a ``DataConfig``; a loaded search space's fixed ``data.root`` (this layer
    loads no space: the caller does). The synthetic set (no root) names none."""
    found: list[str] = []
    for src in sources:
        if src is None:
            continue
        if hasattr(src, "fixed"):  # a search space
            src = dict(src.fixed)
        if hasattr(src, "data") and hasattr(src.data, "root"):  # a RunConfig
            src = src.data
        if isinstance(src, dict) and isinstance(src.get("data"), dict):  # a RunConfig's to_dict()
            src = src["data"]
        root: Any
        if isinstance(src, (str, Path)):  # a folder
            root = src
        elif isinstance(src, dict):
            root = src.get("data.root", src.get("root"))
        else:  # a DataConfig
            root = getattr(src, "root", None)
        if root is not None and str(root) != "":
            found.append(str(root))
    return found


def read_marker(out: str | Path) -> dict[str, Any] | None:
    """The marker of a folder plsearch wrote (None if there is none or it is unreadable)."""
    p = Path(out) / MARKER
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(out: Path, data: dict[str, Any]) -> None:
    import plsearch

    data = {**data, "plsearch": str(getattr(plsearch, "__version__", "?"))}
    tmp = out / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / MARKER)


def _storage_id(out: Path, storage: str | None) -> str:
    """The folder's own storage (study.db / study.journal in ``out``) is "own", whatever the kind."""
    if not storage:
        return "own"
    text = str(storage)
    for name in ("study.db", "study.journal"):
        if text in (str(out / name), f"sqlite:///{out / name}"):
            return "own"
    from plsearch.redaction import redact_url

    return redact_url(text)


def _studies_in_sqlite(db: Path) -> set[str] | None:
    """Study names in an Optuna SQLite file, read-only (None: not an Optuna database)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return {r[0] for r in con.execute("select study_name from studies")}
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _earlier_owners(out: Path) -> set[str]:
    """Study names an earlier version's results folder shows (pareto.md's title, study.db's studies)."""
    names: set[str] = set()
    md = out / "pareto.md"
    if md.is_file():
        first = md.read_text(errors="replace").split("\n", 1)[0]
        prefix = "# Pareto front of study "
        if first.startswith(prefix):
            names.add(first[len(prefix) :].strip())
    if (out / "study.db").is_file():
        names |= _studies_in_sqlite(out / "study.db") or set()
    return names


def claim_results(
    out: str | Path, study_name: str, *, storage: str | None = None, force: bool = False, create: bool = True
) -> Path:
    """Make ``out`` the results folder of ``study_name`` (create it, adopt an earlier version's, or keep it).

    Refuses, before anything is written, a folder that records another study or another storage
    (``force=True`` takes it over; the marker then names the new study). ``create=False`` checks only.
    """
    path = check_out(out)
    sid = _storage_id(path, storage)
    marker = read_marker(path)
    fix = "pass another --out, or --force to write there anyway"
    if marker is not None:
        owner, owner_sid = marker.get("study"), marker.get("storage", "own")
        if owner != study_name and not force:
            raise OutputError(f"results folder {out} belongs to study {owner!r}, not {study_name!r}; {fix}")
        if owner == study_name and owner_sid != sid and "own" not in (owner_sid, sid) and not force:
            raise OutputError(f"results folder {out} holds study {owner!r} of storage {owner_sid}, not of {sid}; {fix}")
        if owner == study_name and owner_sid == sid:
            return path
    elif path.is_dir():
        present = [n for n in RESULTS_FILES if (path / n).exists()]
        owners = _earlier_owners(path) if present else set()
        if owners and study_name not in owners and not force:
            raise OutputError(f"results folder {out} holds study {min(owners)!r}, not {study_name!r}; {fix}")
        if present and sid != "own" and not owners and (path / "study.db").is_file() and not force:
            raise OutputError(f"results folder {out} holds another storage's results (study.db); {fix}")
        if present:
            log.info("adopting results folder %s of an earlier plsearch version (study %r)", path, study_name)
    if create:
        path.mkdir(parents=True, exist_ok=True)
        _write_marker(path, {"kind": "results", "study": study_name, "storage": sid})
    return path


def claim_folder(
    out: str | Path,
    kind: str,
    *,
    targets: Iterable[str] = (),
    force: bool = False,
    adopt: Sequence[str] = (),
    create: bool = True,
    flag: str = "--out",
) -> Path:
    """Make ``out`` a folder of ``kind`` and check that writing ``targets`` (names in it) damages nothing.

    A target may be written if it does not exist, or the marker lists it (plsearch wrote it), or the
    folder has no marker but holds one of ``adopt`` (an earlier version's folder of this kind, e.g. a
    run's ``config.yaml``). ``force=True`` allows overwriting. Nothing is written when this raises.
    """
    path = check_out(out, flag=flag)
    marker = read_marker(path) or {}
    if marker and marker.get("kind") not in (kind, None) and not force:
        raise OutputError(
            f"{flag} {out} is a {marker.get('kind')} folder of plsearch, not a {kind} folder; pass another folder"
        )
    own = set(marker.get("files") or [])
    adopted = not marker and path.is_dir() and any((path / a).exists() for a in adopt)
    if not force and not adopted:
        clash = sorted(t for t in targets if (path / t).exists() and t not in own)
        if clash:
            more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
            raise OutputError(
                f"{flag} {out} already holds {clash[0]}{more}, which plsearch did not write; choose a "
                "new or empty folder, or move that file away"
            )
    if create:
        path.mkdir(parents=True, exist_ok=True)
        if not marker or marker.get("kind") != kind:
            _write_marker(path, {"kind": kind, "files": sorted(own)})
    return path


def record_written(out: str | Path, names: Iterable[str]) -> None:
    """Add ``names`` (relative to ``out``) to the folder's marker: plsearch wrote them, a rerun may replace them."""
    path = Path(out)
    marker = read_marker(path) or {"kind": "output"}
    files = set(marker.get("files") or []) | {str(n) for n in names}
    marker.pop("plsearch", None)
    _write_marker(path, {**marker, "files": sorted(files)})


def unique_names(files: Sequence[str | Path], suffix: str = ".png") -> list[str]:
    """One output name per input file, in order: ``<stem><suffix>``, or ``<stem>_<ext><suffix>`` where stems
    collide (``a.png`` and ``a.jpg`` -> ``a_png.png`` and ``a_jpg.png``); numbered if still colliding."""
    paths = [Path(f) for f in files]
    stems = [p.stem for p in paths]
    names = [
        f"{s}{suffix}" if stems.count(s) == 1 else f"{s}_{p.suffix.lstrip('.').lower()}{suffix}"
        for s, p in zip(stems, paths)
    ]
    seen: set[str] = set()
    out = []
    for name in names:
        base, k = name, 2
        while name.lower() in seen:  # case-insensitive file systems would merge A.png and a.png
            name = f"{base[: -len(suffix)] if suffix else base}_{k}{suffix}"
            k += 1
        seen.add(name.lower())
        out.append(name)
    return out


def safe_child(out: str | Path, name: str, *, what: str = "name") -> Path:
    """``out/name`` for a user-given ``name`` (a study name, a space's ``name:``), refused if it leaves ``out``."""
    text = str(name)
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\x00" in text or text.startswith("~"):
        raise OutputError(
            f"{what} {text!r} is not a plain name (no path separators, '..' or '~'); "
            "use letters, digits, '-', '_' and '.'"
        )
    base = _resolve(out)
    child = (base / text).resolve()
    if not _inside(child, base) or child == base:
        raise OutputError(f"{what} {text!r} leads outside {out}; use a plain name")
    return child


def plan_outputs(
    out: str | Path,
    files: Sequence[str | Path],
    *,
    kind: str = "predict",
    suffix: str = ".png",
    inputs: Iterable[str | Path | None] = (),
    force: bool = False,
    flag: str = "--out",
) -> list[Path]:
    """Where each of ``files`` writes its output in ``out`` (``check_out`` + ``unique_names`` + ``claim_folder``).

    Refuses (nothing written) an ``out`` that is a file, lies in an input, holds an input file that an
    output would replace, or holds files of those names that plsearch did not write. On success ``out``
    exists and its marker lists the names, so a rerun (or a run killed half-way) may replace them.
    """
    srcs = [_resolve(f) for f in files]
    path = check_out(out, inputs=inputs, flag=flag)
    names = unique_names(srcs, suffix)
    targets = [path / n for n in names]
    hit = sorted(set(targets) & set(srcs))
    if hit:
        raise OutputError(f"{flag} {out} would replace the input {hit[0].name}; choose an --out outside the inputs")
    claim_folder(path, kind, targets=names, force=force, flag=flag)
    record_written(path, names)
    return targets
