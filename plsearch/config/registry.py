"""One registry shape for every extension point: ``register_x`` / ``list_x`` / ``get_x``.

A ``Registry`` maps names to objects. Built-ins are listed by name with a lazy import path
(``"package.module:attr"``), so ``list_x()`` and name checks never import torch or optuna; ``get_x``
imports on first use. Unknown names raise ``RegistryError`` (a ``ValueError``) listing what is allowed.

Blocks (``register_block`` / ``list_blocks`` / ``get_block``) and up units (``register_up`` / ``list_ups`` /
``get_up``) live here beside presets (``plsearch.config.presets``), and the search's metrics, samplers and
pruners (``plsearch.search.registries``) use the same class. A new block is one decorated class::

    from plsearch.config.registry import register_block

    @register_block("dwsep")
    class DepthwiseSeparable(Block): ...

and so is a new up unit (``ModelConfig.up``), a ``plsearch.nn.blocks.UpUnit`` with ``out_width``::

    @register_up("bilinear")
    class BilinearUp(UpUnit): ...

A module that defines it must be imported before the name is used (a search space lists it under
``imports:``). What the registry and the torch-free costing need of an entry is ``BlockType`` /
``UpUnitType`` (the class side); what the network needs of an instance is ``plsearch.nn.blocks.Block``.
The built-ins' numbers are read without torch from ``plsearch.graph.costs``; a plug-in's from its class.
"""

from __future__ import annotations

import importlib
import weakref
from typing import Any, Callable, Generic, Iterator, Mapping, Protocol, TypeVar

T = TypeVar("T")
V = TypeVar("V")

__all__ = [
    "Registry",
    "RegistryError",
    "forget_module",
    "import_path",
    "BlockType",
    "UpUnitType",
    "BLOCKS_REGISTRY",
    "register_block",
    "list_blocks",
    "get_block",
    "UP_REGISTRY",
    "register_up",
    "list_ups",
    "get_up",
]


_REGISTRIES: "weakref.WeakSet[Registry[Any]]" = weakref.WeakSet()


def forget_module(module: str) -> list[str]:
    """Drop what ``module`` registered in every registry (a plug-in whose import raised: nothing of it stays
    registered, so a second load does not pass as if it had loaded). Returns ``kind:name`` of each entry."""
    return [f"{r.kind}:{n}" for r in list(_REGISTRIES) for n in r.forget_module(module)]


class RegistryError(ValueError):
    """A name is not registered, or is registered twice; the message lists the allowed names."""


def import_path(path: str) -> Any:
    """``"pkg.module:attr"`` -> the object (``attr`` may be dotted)."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _path_of(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


class Registry(Generic[V]):
    """Names -> objects of one ``kind`` (``"block"``, ``"metric"``, ...), built-ins imported lazily.

    Args:
        kind: what an entry is, used in error messages (``block='x' is not registered; ...``).
        builtins: name -> ``"module:attr"`` import path; resolved by ``get`` only.
        loader: a module whose import registers the built-ins (for registries filled by decorators).
        what: how an error names an entry (``"a preset"``; default ``"a registered <kind>"``).
    """

    def __init__(
        self, kind: str, builtins: Mapping[str, str] | None = None, loader: str | None = None, what: str | None = None
    ) -> None:
        self.kind = kind
        self.what = what or f"a registered {kind}"
        self._lazy: dict[str, str] = dict(builtins or {})
        self._loaded: dict[str, V] = {}
        self._loader = loader
        _REGISTRIES.add(self)

    def forget_module(self, module: str) -> list[str]:
        """Drop the entries ``module`` (or a submodule) registered: objects it defines, paths into it. For a
        plug-in whose import failed half-way (``forget_module``); returns the names dropped."""

        def of(where: str) -> bool:
            return where == module or where.startswith(module + ".")

        gone = [n for n, obj in self._loaded.items() if of(str(getattr(obj, "__module__", "") or ""))]
        gone += [n for n, path in self._lazy.items() if of(path.partition(":")[0]) and n not in gone]
        for name in gone:
            self._loaded.pop(name, None)
            self._lazy.pop(name, None)
        return gone

    def _load_builtins(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            importlib.import_module(loader)

    def load(self) -> None:
        """Import the module that registers the built-ins (once)."""
        self._load_builtins()

    def register(self, name: str, obj: V, *, replace: bool = False) -> V:
        """Add ``obj`` under ``name``; the same object twice is fine, another one under a taken name is not
        (``replace=True`` swaps a user entry, e.g. a re-imported module's)."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        held = self._loaded.get(name)
        if held is not None and held is not obj and not (replace and name not in self._lazy):
            raise RegistryError(f"{self.kind} {name!r} is already registered by {_path_of(held)}; choose another name")
        lazy = self._lazy.get(name)
        if held is None and lazy is not None and lazy != _path_of(obj):
            raise RegistryError(f"{self.kind} {name!r} is built in ({lazy}); choose another name")
        self._loaded[name] = obj
        return obj

    def register_path(self, name: str, path: str) -> None:
        """Add a lazy entry: ``path`` (``"module:attr"``) is imported by the first ``get``."""
        if name in self:
            raise RegistryError(f"{self.kind} {name!r} is already registered; choose another name")
        self._lazy[name] = path

    def registered(self, name: str) -> V | None:
        """The object under ``name`` if it is loaded already (no import), else None."""
        return self._loaded.get(name)

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object and returns it unchanged."""

        def deco(obj: T) -> T:
            self.register(name, obj)  # type: ignore[arg-type]
            return obj

        return deco

    def names(self) -> list[str]:
        """Every registered name, sorted; imports nothing heavy."""
        return sorted({*self._lazy, *self._loaded})

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._loaded

    def check(self, name: Any) -> None:
        """Raise ``RegistryError`` unless ``name`` is registered (no import)."""
        if name not in self:
            self._load_builtins()
        if name not in self:
            raise RegistryError(self.unknown(name))

    def get(self, name: str) -> V:
        """The object registered as ``name``, importing a built-in on first use."""
        if name not in self._loaded:
            self._load_builtins()
        if name in self._loaded:
            return self._loaded[name]
        if name in self._lazy:
            obj = import_path(self._lazy[name])
            self._loaded.setdefault(name, obj)
            return self._loaded[name]
        raise RegistryError(self.unknown(name))

    def unknown(self, name: Any) -> str:
        """The error line for an unknown ``name``: what it is not, and every allowed name."""
        return f"{self.kind}={name!r} is not {self.what}; choose one of {self.names()}"

    def unregister(self, name: str) -> None:
        """Remove a user entry (tests, notebooks); built-ins stay."""
        self._loaded.pop(name, None)

    def items(self) -> Iterator[tuple[str, V]]:
        """``(name, object)`` of every entry, importing the built-ins."""
        for name in self.names():
            yield name, self.get(name)


# ----------------------------------------------------------------------------- blocks


class BlockType(Protocol):
    """What ``register_block`` registers: a class (a ``plsearch.nn.blocks.Block``) built as ``cls(cin, cout, dims)``
    that maps ``(b, cin, *s)`` to ``(b, cout, *s)``, and answers its costs without being built:
    ``params(cin, cout, dims) -> (shared, per application)`` and ``macs(cin, cout, dims, out_voxels)``, equal to
    the built module's and to fvcore's count (``plsearch.testing.check_block``)."""

    def __call__(self, cin: int, cout: int, dims: int, /) -> Any: ...

    @staticmethod
    def params(cin: int, cout: int, dims: int, /) -> tuple[int, int]: ...

    @staticmethod
    def macs(cin: int, cout: int, dims: int, out_voxels: int, /) -> int: ...


class UpUnitType(BlockType, Protocol):
    """What ``register_up`` registers: a ``BlockType`` that doubles the resolution (``plsearch.nn.blocks.UpUnit``),
    and says its output width before it is built: ``out_width(below, here)`` from the width of the level it
    reads (``below``) and of the level it lands on (``here``); the wiring sizes the decoder with it."""

    @staticmethod
    def out_width(below: int, here: int, /) -> int: ...


BLOCKS_REGISTRY: Registry[type] = Registry(
    "block",
    {
        "plconv": "plsearch.nn.blocks.conv:PLConv",
        "convbnrelu": "plsearch.nn.blocks.conv:ConvBNReLU",
        "residual": "plsearch.nn.blocks.residual:ResidualUnit",
    },
)


def _class_decorator(registry: Registry[type], attr: str, name: str) -> Callable[[T], T]:
    """Register the decorated class as ``name`` and tell it its name (``cls.<attr>``)."""

    def deco(cls: T) -> T:
        registry.register(name, cls)  # type: ignore[arg-type]
        setattr(cls, attr, name)
        return cls

    return deco


def register_block(name: str) -> Callable[[T], T]:
    """Class decorator: make a block available under ``name`` (``ModelConfig.block``)."""
    return _class_decorator(BLOCKS_REGISTRY, "block_name", name)


def list_blocks() -> list[str]:
    """Names accepted by ``ModelConfig.block``; imports no torch."""
    return BLOCKS_REGISTRY.names()


def get_block(name: str) -> type:
    """The block class registered as ``name`` (imports torch for the built-ins)."""
    return BLOCKS_REGISTRY.get(name)


# ----------------------------------------------------------------------------- up units

UP_REGISTRY: Registry[type] = Registry(
    "up",
    {
        "convt3": "plsearch.nn.blocks.up:UpConvT3",
        "convt2_half": "plsearch.nn.blocks.up:UpConvT2Half",
    },
    what="a registered up unit",
)


def register_up(name: str) -> Callable[[T], T]:
    """Class decorator: make an up unit (``UpUnitType``) available under ``name`` (``ModelConfig.up``)."""
    return _class_decorator(UP_REGISTRY, "up_name", name)


def list_ups() -> list[str]:
    """Names accepted by ``ModelConfig.up``; imports no torch."""
    return UP_REGISTRY.names()


def get_up(name: str) -> type:
    """The up-unit class registered as ``name`` (imports torch for the built-ins)."""
    return UP_REGISTRY.get(name)


def __getattr__(attr: str) -> dict[str, type]:
    if attr == "BLOCKS":  # {name: class} of every block; imports them (and torch)
        return dict(BLOCKS_REGISTRY.items())
    if attr == "UP_UNITS":  # {name: class} of every up unit; imports them (and torch)
        return dict(UP_REGISTRY.items())
    raise AttributeError(attr)
