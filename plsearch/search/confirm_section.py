"""The ``confirm:`` section of a space file: how ``python -m plsearch.confirm`` retrains the front.

    confirm:
      fidelity: {train.epochs: 60, train.max_steps_per_epoch: 0}   # the final fidelity, over the search's
      seeds: 3                                                     # runs per config (or folds: 5)
      references: true                                             # retrain the presets too

Imports no torch: the space parser validates the section with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KEYS", "ConfirmSection", "parse_confirm_section"]

KEYS = ("fidelity", "seeds", "folds", "references")


@dataclass(frozen=True)
class ConfirmSection:
    """``fidelity``: dotted RunConfig paths -> values applied over each trial's config; ``seeds`` runs per
    config; ``folds`` (>= 2) K-fold cross-validation instead of seeds; ``references``: presets too."""

    fidelity: Mapping[str, Any] = field(default_factory=dict)
    seeds: int = 3
    folds: int | None = None
    references: bool = True


def parse_confirm_section(raw: Any) -> ConfirmSection:
    """Validate a space file's ``confirm:`` mapping (None: the defaults). Raises ``ValueError`` naming the key."""
    if raw is None:
        return ConfirmSection()
    if not isinstance(raw, Mapping):
        raise ValueError(  # noqa: TRY004 - the space parser reports ValueErrors
            f"confirm: must be a mapping with keys {', '.join(KEYS)}, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ValueError(f"confirm: unknown key {unknown[0]!r}; allowed: {', '.join(KEYS)}")
    fidelity = raw.get("fidelity") or {}
    if not isinstance(fidelity, Mapping):
        raise ValueError(  # noqa: TRY004
            "confirm.fidelity must map dotted config paths to values, e.g. {train.epochs: 60}"
        )
    from plsearch.config.gate import check_value

    checked = {}
    for path, value in fidelity.items():
        if not isinstance(path, str) or path.split(".", 1)[0] not in ("model", "data", "train") or "." not in path:
            raise ValueError(f"confirm.fidelity: {path!r} is not a dotted config path; write e.g. train.epochs")
        try:
            checked[path] = check_value(path, value)
        except ValueError as e:
            raise ValueError(f"confirm.fidelity: {e}") from None
    seeds, folds = raw.get("seeds", 3), raw.get("folds")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"confirm.seeds={seeds!r} must be an integer >= 1")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise ValueError(f"confirm.folds={folds!r} must be an integer >= 2 (or absent)")
    refs = raw.get("references", True)
    if not isinstance(refs, bool):
        raise ValueError(f"confirm.references={refs!r} must be true or false")  # noqa: TRY004
    return ConfirmSection(fidelity=checked, seeds=seeds, folds=folds, references=refs)
