"""One writer per output folder: an advisory lock held for a command's whole run.

``hold_folder(out)`` (a context manager) takes ``out/.plsearch.lock`` with ``fcntl.flock`` (exclusive,
non-blocking) and writes its holder into it (JSON: host, pid, command, since). A second writer of the
same folder gets ``FolderBusyError`` (a ``ValueError``: one line and exit 2 through ``run_cli``) that
names the holder and the fix: wait for it to end, or pick another ``--out``.

- Released (the file removed) when the block ends, on an exception and on Ctrl-C too.
- Stale: a lock file left by a killed process (its flock is free), or one whose recorded process is
  dead on this host (a forked child may still hold the flock), is taken over with a warning that names
  the old holder. Another host's holder is never judged dead: only a free flock frees its folder.
- The folder is created if needed (and removed again at release if the lock made it and it is still
  empty), so call ``outputs.check_out`` first: the lock file must never land inside the input data.
- Several processes of one run (``search --workers N``, the ``plsearch.studies.runs`` workers of confirm and
  fidelity) share the folder: the launching process holds the lock, the workers take none. The lock's
  descriptor is not inherited by the processes started with ``subprocess``.
- The lock file is not an output: ``outputs.claim_folder``/``claim_results`` judge only the names a
  writer writes and the marker, so a lock file (even a stale one) never makes a folder look foreign.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = ".plsearch.lock"

__all__ = ["LOCK_NAME", "FolderBusyError", "FolderLock", "hold_folder", "read_holder"]


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` exist on this host (zombies, killed but not yet reaped, count as dead)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OverflowError, ValueError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def pid_started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds, from /proc), or None where that is unknown."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class FolderBusyError(ValueError):
    """Another process writes the folder; the message names it (host, pid, since) and the fix."""


def read_holder(folder: str | Path) -> dict[str, Any] | None:
    """What the lock file of ``folder`` records (None: no lock file, or an unreadable one)."""
    try:
        return _parse((Path(folder) / LOCK_NAME).read_text())
    except OSError:
        return None


def _parse(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _read_fd(fd: int) -> dict[str, Any] | None:
    try:
        return _parse(os.pread(fd, 1 << 16, 0).decode("utf-8", "replace"))
    except OSError:
        return None


def _who(h: dict[str, Any] | None) -> str:
    if not h:
        return "another plsearch process"
    cmd = f"{h['command']}, " if h.get("command") else ""
    return f"{cmd}pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('since', '?')}"


def _dead_here(h: dict[str, Any] | None) -> bool:
    """Is the recorded holder a process of this host that no longer runs (or whose pid was reused)?"""
    if not h or h.get("host") != socket.gethostname():
        return False
    pid = h.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False  # this very process holds it (another FolderLock): alive
    if not pid_alive(pid):
        return True
    started, since = pid_started_at(pid), h.get("started")
    return started is not None and isinstance(since, (int, float)) and started > since + 2


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class FolderLock:
    """The advisory lock of one output folder (see the module doc); use as a context manager."""

    def __init__(self, folder: str | Path, *, command: str = "", flag: str = "--out", fix: str = "") -> None:
        self.folder = Path(folder).expanduser()
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.where = f"{flag} {folder}" if flag else str(folder)
        self.fix = fix or f"wait for it to end, or pick another {flag or 'folder'}"
        self._fd: int | None = None
        self._made_folder = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise ``FolderBusyError`` naming its holder. Taking over a stale one warns."""
        if self._fd is not None:
            return self
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        try:
            for _ in range(50):  # a holder that removes its file as we open it: open the new one
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited (PEP 446)
                try:
                    if self._take(fd):
                        self._fd = fd
                        return self
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)
            raise FolderBusyError(f"{self.where}: could not take its lock {self.path}; try again")
        except BaseException:
            self._remove_made_folder()
            raise

    def _take(self, fd: int) -> bool:
        """True: ``fd`` is locked and is the lock file; False: open the path again."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self._holder_of(fd)
            if not _dead_here(holder):
                extra = (
                    f" (if it no longer runs, delete {self.path})"
                    if holder and holder.get("host") != socket.gethostname()
                    else ""
                )
                raise FolderBusyError(f"{self.where} is being written by {_who(holder)}; {self.fix}{extra}") from None
            if not _same_file(fd, self.path):
                return False  # another process took it over first: look again
            log.warning("taking over the lock of %s: its holder (%s) is gone", self.folder, _who(holder))
            self.path.unlink(missing_ok=True)  # a child of the dead holder may keep the old file's flock
            return False
        if not _same_file(fd, self.path):  # its holder removed the file between our open and flock
            return False
        old = _read_fd(fd)
        if old:  # left by a process that ended without releasing it (killed)
            log.warning("taking over the stale lock of %s: its holder (%s) is gone", self.folder, _who(old))
        now = time.time()
        data = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": self.command,
            "since": datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
            "started": now,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(data) + "\n").encode(), 0)
        return True

    @staticmethod
    def _holder_of(fd: int) -> dict[str, Any] | None:
        """The holder's record; a holder that has just locked may not have written it yet."""
        for _ in range(20):
            h = _read_fd(fd)
            if h:
                return h
            time.sleep(0.01)
        return None

    def release(self) -> None:
        """Remove the lock file and unlock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)  # before unlocking: a waiter then opens a new file
        finally:
            os.close(fd)
        self._remove_made_folder()

    def _remove_made_folder(self) -> None:
        if self._made_folder:
            self._made_folder = False
            try:
                self.folder.rmdir()  # only if still empty: nothing was written
            except OSError:
                pass

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def hold_folder(folder: str | Path, *, command: str = "", flag: str = "--out", fix: str = "") -> FolderLock:
    """``with hold_folder(out, command="train"):`` the run's writes; see ``FolderLock``.

    ``command`` names the holder in the lock file; ``flag`` (the option that named ``folder``, or "")
    and ``fix`` (default: wait, or pick another ``flag``) word a second writer's error.
    """
    return FolderLock(folder, command=command, flag=flag, fix=fix)
