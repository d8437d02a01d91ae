"""Where a trial's numbers came from: package versions and the git revision of the plsearch checkout."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Package versions and the git revision of the plsearch checkout (None outside a git repo)."""
    import optuna
    import torch

    import plsearch

    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(plsearch.__file__).parent, capture_output=True, text=True, timeout=5
        )
        git = rev.stdout.strip() or None if rev.returncode == 0 else None
        if git:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(plsearch.__file__).parent,
            ).stdout.strip()
            git += "-dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        git = None
    versions = {
        "plsearch": plsearch.__version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
    }
    return {"versions": versions, "git_rev": git}
