"""Progress of ``python -m plsearch.search``: one display for the references, then one for the trials.

The search prints a result line per reference and per trial on stdout; this adds, on stderr, how far
it is and how long is left (``plsearch.progress``: a tqdm bar on a terminal, plain lines in logs and
CI). The references' display has a heartbeat, because one reference can train for minutes and a
silent minute looks like a hang. Result lines go through :meth:`SearchProgress.say`, so on a
terminal they print above the bar instead of through it.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from plsearch.progress import Progress, progress

__all__ = ["SearchProgress"]


class SearchProgress:
    """Progress displays of one search run (the CLI's; the library's search prints nothing).

    Nothing shows until a stage starts (:meth:`stage`), so input errors found before any work stay one line.

    Args:
        file: where progress goes (default stderr); result lines always go to stdout.
    """

    def __init__(self, file: IO[str] | None = None) -> None:
        self.file = file
        self.refs: Progress[Any] | None = None
        self.trials: Progress[Any] | None = None
        self.best: float | None = None

    def stage(self, name: str, done: int, total: int) -> None:
        """``references`` or ``trials`` start, ``done`` of ``total`` already finished (a resumed study)."""
        if name == "references":
            if self.refs is None and total:
                self.refs = progress(total=total, desc="references", unit="ref", file=self.file, heartbeat=True)
            return
        if self.refs is not None:
            self.refs.close()
        if self.trials is None:
            self.trials = progress(
                total=total, desc="trials", unit="trial", file=self.file, initial=min(done, total), heartbeat=True
            )

    def say(self, line: str) -> None:
        """Print a result line on stdout (above the bar on a terminal)."""
        bar = self.trials or self.refs
        if bar is not None:
            bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def reference(self, name: str, cached: bool) -> None:
        """One reference finished (trained or ``cached``)."""
        if self.refs is not None:
            self.refs.set_postfix(last=f"{name} ({'cached' if cached else 'trained'})")
            self.refs.update(1)

    def trial(self, rec: dict[str, Any]) -> None:
        """One trial finished (its record); the display shows the best feasible val Dice so far."""
        if self.trials is None:
            return
        dice = (rec.get("metrics") or {}).get("val_dice")
        if rec.get("state") == "COMPLETE" and rec.get("feasible") and dice is not None:
            self.best = float(dice) if self.best is None else max(self.best, float(dice))
        if self.best is not None:
            self.trials.set_postfix(best_val_dice=self.best)
        self.trials.update(1)

    def close(self, failed: bool = False) -> None:
        """End both displays; after a failure without their final lines (the error line says it)."""
        for bar in (self.refs, self.trials):
            if bar is not None:
                bar.close(quiet=failed)
