"""What every contract check shares: the error it raises and a tiny helper or two."""

from __future__ import annotations

from typing import Any


class ContractError(AssertionError):
    """A plug-in or shipped entry breaks one of plsearch's contracts; the message names which."""


def require(ok: Any, message: str) -> None:
    """Raise ``ContractError(message)`` unless ``ok``."""
    if not ok:
        raise ContractError(message)
