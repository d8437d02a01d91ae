"""Progress for long loops: a tqdm bar on a terminal, plain periodic lines in logs and CI.

A bar redrawn with carriage returns turns a log file into one unreadable line, and nothing at all
for a minute looks like a hang. So :func:`progress` picks by where it writes: a terminal gets a
tqdm bar; anything else (a file, a pipe, CI) gets one plain line when the loop starts, then at most
one every ``interval_s`` seconds, and one at the end::

    train: 12/80 steps (15%) 4.1s elapsed, 23.2s left  loss=0.41

``PLSEARCH_PROGRESS`` overrides the choice: ``bar``, ``plain`` or ``off``. ``PLSEARCH_PROGRESS_INTERVAL``
sets the plain interval in seconds (default 30). ``heartbeat=True`` keeps saying so while one item
takes long (a search's reference that trains for minutes): a plain line every interval, or a bar
redraw with the elapsed time, even without an update.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Generic, TypeVar

__all__ = ["Progress", "mode_for", "progress"]

T = TypeVar("T")

MODES = ("bar", "plain", "off")
DEFAULT_INTERVAL_S = 30.0


def mode_for(file: IO[str]) -> str:
    """``bar`` on a terminal, ``plain`` otherwise; ``$PLSEARCH_PROGRESS`` wins when it names a mode."""
    env = os.environ.get("PLSEARCH_PROGRESS", "").strip().lower()
    if env in MODES:
        return env
    try:
        return "bar" if file.isatty() else "plain"
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return "plain"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("PLSEARCH_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(round(s), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


class Progress(Generic[T]):
    """An iterable with progress output; also usable by hand (``update``, ``set_postfix``, ``write``).

    Use :func:`progress` to make one. Closing (end of iteration, ``close()`` or the ``with`` block)
    prints the final plain line.
    """

    def __init__(
        self,
        iterable: Iterable[T] | None,
        total: int | None,
        desc: str,
        unit: str,
        *,
        file: IO[str] | None,
        mode: str | None,
        interval_s: float | None,
        leave: bool,
        plain_ends: bool = True,
        initial: int = 0,
        heartbeat: bool = False,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file if file is not None else sys.stderr
        self.mode = mode if mode is not None else mode_for(self.file)
        if self.mode not in MODES:
            raise ValueError(f"progress mode {self.mode!r} is not one of {list(MODES)}")
        self.interval_s = _interval() if interval_s is None else interval_s
        self.n = initial
        self.postfix = ""
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._closed = False
        self._ends = plain_ends
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc or None,
                unit=unit,
                file=self.file,
                leave=leave,
                dynamic_ncols=True,
                initial=initial,
            )
        elif self.mode == "plain" and plain_ends:
            self._line()  # the loop has started: say so at once
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if heartbeat and self.mode != "off" and self.interval_s > 0:
            self._ticker = threading.Thread(target=self._tick, name=f"progress {desc}", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        """Say the loop is alive every ``interval_s`` even when no item finishes."""
        while not self._stop.wait(self.interval_s):
            if self._closed:
                return
            if self._bar is not None:
                self._bar.refresh()  # redraws the elapsed time
            elif time.perf_counter() - self._last >= self.interval_s * 0.99:
                self._line()

    # -- iteration -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("this Progress has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("progress over an iterable of unknown length")
        return self.total

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manual use ------------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "plain":
            now = time.perf_counter()
            if now - self._last >= self.interval_s and not (self.total is not None and self.n >= self.total):
                self._line(now)

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the count (``loss=0.41``); floats with 4 significant digits."""
        self.postfix = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix, refresh=False)

    def write(self, line: str, file: IO[str] | None = None) -> None:
        """Print a line of its own on ``file`` (default: the progress's own file), above the bar on a terminal.

        With ``file`` given the line prints whatever the mode (it is output, e.g. a trial's result line);
        without, nothing prints when the mode is ``off``.
        """
        if self.mode == "off" and file is None:
            return
        if self._bar is not None:
            self._bar.write(line, file=file or self.file)  # clears the bar, prints, redraws it
        else:
            print(line, file=file or self.file, flush=True)

    def close(self, quiet: bool = False) -> None:
        """End the display: the final plain line, unless ``quiet`` (the loop failed: its error says it all)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=1.0)
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "plain" and not quiet and (self._ends or self._last > self._t0):
            self._line(done=True)  # inner loops without end lines still close what they started

    # -- plain lines -----------------------------------------------------------------------------
    def _line(self, now: float | None = None, done: bool = False) -> None:
        now = time.perf_counter() if now is None else now
        self._last = now
        elapsed = now - self._t0
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        parts = [f"{self.desc}: " if self.desc else "", f"{count} {self.unit}"]
        if self.total:
            parts.append(f" ({100 * self.n // self.total}%)")
        parts.append(f" {_seconds(elapsed)} elapsed")
        if not done and self.total and 0 < self.n < self.total:
            parts.append(f", {_seconds(elapsed / self.n * (self.total - self.n))} left")
        if done:
            parts.append(", done")
        if self.postfix:
            parts.append(f"  {self.postfix}")
        self.file.write("".join(parts) + "\n")  # one write: lines from the heartbeat thread stay whole
        self.file.flush()


def progress(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    *,
    file: IO[str] | None = None,
    mode: str | None = None,
    interval_s: float | None = None,
    leave: bool = True,
    plain_ends: bool = True,
    initial: int = 0,
    heartbeat: bool = False,
) -> Progress[T]:
    """Wrap ``iterable`` (or count by hand with ``update``) with progress output on ``file``.

    Args:
        iterable: what to loop over; None for manual ``update()`` calls.
        total: number of items (default ``len(iterable)`` when it has one).
        desc: a short label, e.g. ``"epochs"``.
        unit: what one item is, e.g. ``"trial"``.
        file: where to write (default stderr).
        mode: ``bar``, ``plain`` or ``off`` (default: :func:`mode_for` ``file``).
        interval_s: plain mode: at most one line per this many seconds (default
            ``$PLSEARCH_PROGRESS_INTERVAL`` or 30); the first and last lines always print.
        leave: keep the finished bar on screen (bar mode).
        plain_ends: plain mode: print the first and last lines; False (inner loops, e.g. the steps of
            one epoch) prints only the periodic lines, and then a last one.
        initial: units already done (a resumed search's finished trials).
        heartbeat: keep printing (plain) or redrawing (bar) every ``interval_s`` while no unit finishes.
    """
    return Progress(
        iterable,
        total,
        desc,
        unit,
        file=file,
        mode=mode,
        interval_s=interval_s,
        leave=leave,
        plain_ends=plain_ends,
        initial=initial,
        heartbeat=heartbeat,
    )
