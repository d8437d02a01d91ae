"""Block registry: a new block is one registered class; tests run over every entry.

Blocks are imported lazily (torch is heavy), so ``BLOCKS`` is filled on first access of
``plsearch.registry.BLOCKS`` through ``register_block`` calls in ``plsearch.blocks``.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

_BLOCKS: dict[str, type] = {}


def register_block(name: str) -> Callable[[T], T]:
    """Class decorator: make a block available under ``name`` (``ModelConfig.block``)."""

    def deco(cls: T) -> T:
        if name in _BLOCKS and _BLOCKS[name] is not cls:
            raise ValueError(f"block {name!r} is already registered by {_BLOCKS[name].__qualname__}")
        _BLOCKS[name] = cls  # type: ignore[assignment]
        cls.block_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def get_block(name: str) -> type:
    import plsearch.blocks  # noqa: F401  (registers the built-in blocks)

    try:
        return _BLOCKS[name]
    except KeyError:
        raise ValueError(f"block={name!r} is not registered; choose one of {sorted(_BLOCKS)}") from None


def __getattr__(attr: str) -> dict[str, type]:
    if attr == "BLOCKS":
        import plsearch.blocks  # noqa: F401

        return dict(_BLOCKS)
    raise AttributeError(attr)
