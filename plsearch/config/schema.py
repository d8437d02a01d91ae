"""Plain, frozen, typed configuration data and the helpers that validate and round-trip it.

Every config is a frozen dataclass holding only YAML-representable values, so a checkpoint or a
trial record can carry the config that rebuilds its model. Unknown keys are rejected with the
list of valid ones; bad values raise ``ValueError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Mapping, TypeVar, Union, cast

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the field and what is allowed."""


# ----------------------------------------------------------------------------- generic helpers


def check_choice(name: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    """``lo <= value <= hi``; NaN and infinities are refused too (every comparison with NaN is false)."""
    lo_s = "-inf" if lo is None else lo
    hi_s = "inf" if hi is None else hi
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} is not a finite number; allowed: {lo_s} <= {name} <= {hi_s}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{name}={value!r} is out of range; allowed: {lo_s} <= {name} <= {hi_s}")


# YAML 1.1 (PyYAML) reads 1e-3 and 6.0e7 (no dot, or no exponent sign) as strings; people mean numbers.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def yaml_number(value: Any) -> Any:
    """``"1e-3"`` -> ``0.001``: a string that is a plain decimal number becomes a float; anything else as is.

    The one place the YAML-1.1 exponent quirk is fixed (``--set``, space files, config files)."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


@dataclass(frozen=True)
class Range:
    """Field rule: ``lo <= value <= hi`` (``None``: unbounded); ``above=True`` also excludes ``lo``."""

    lo: float | None = None
    hi: float | None = None
    above: bool = False

    def check(self, name: str, value: Any) -> None:
        check_range(name, value, self.lo, self.hi)
        if self.above and self.lo is not None and value <= self.lo:
            raise ConfigError(f"{name}={value} must be > {self.lo:g}")


@dataclass(frozen=True)
class OneOf:
    """Field rule: the value is one of ``choices``."""

    choices: tuple[Any, ...]

    def check(self, name: str, value: Any) -> None:
        check_choice(name, value, self.choices)


@dataclass(frozen=True)
class Registered:
    """Field rule: the value names an entry of a ``plsearch.config.registry`` registry (checked lazily)."""

    registry: str  # attribute of plsearch.config.registry, e.g. "BLOCKS_REGISTRY"

    def check(self, name: str, value: Any) -> None:
        from plsearch.config import registry

        try:
            getattr(registry, self.registry).check(value)
        except registry.RegistryError as e:
            raise ConfigError(str(e)) from None


@functools.cache
def _rules(cls: Any) -> tuple[tuple[str, Any, tuple[Any, ...]], ...]:
    """``(field, plain type, rules)`` of every init field of ``cls``, from its ``Annotated`` hints."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in fields(cls):
        if not f.init:
            continue
        tp, rules = hints[f.name], cast(tuple[Any, ...], ())
        if typing.get_origin(tp) is Annotated:
            tp, *extra = typing.get_args(tp)
            rules = tuple(extra)
        if typing.get_origin(tp) is typing.Literal:
            rules = (OneOf(typing.get_args(tp)), *rules)
        out.append((f.name, tp, rules))
    return tuple(out)


def check_field(cls: type, name: str, value: Any, label: str | None = None) -> None:
    """Apply the per-field rules ``cls`` declares for ``name`` to ``value`` (ConfigError naming ``label``)."""
    for fname, _, rules in _rules(cls):
        if fname == name:
            for rule in rules:
                rule.check(label or name, value)
            return
    raise ConfigError(f"unknown key {name!r}; valid keys: {', '.join(f for f, _, _ in _rules(cls))}")


def check_fields(obj: Any) -> None:
    """Apply every per-field rule of a config dataclass instance (called first in ``__post_init__``)."""
    cls: Any = type(obj)
    for name, _, rules in _rules(cls):
        for rule in rules:
            rule.check(name, getattr(obj, name))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert a YAML/JSON value to the annotated field type, or raise ConfigError naming the field."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, arg, value)
            except ConfigError as e:
                errors.append(str(e))
        allowed = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{name}={value!r} has the wrong type; expected {allowed}")
    if origin is typing.Literal:
        check_choice(name, value, args)
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} must be a list; write e.g. {name}=[1, 2]")
        item_tp = args[0] if args else Any
        return tuple(_coerce(f"{name}[{i}]", item_tp, v) for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of {_type_name(tp)} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{name}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}={value!r} must be true or false; write {name}=true or {name}=false")
    if tp is int:
        value = yaml_number(value)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name}={value!r} must be an integer; write e.g. {name}=3")
        return value
    if tp is float:
        value = yaml_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r} must be a number; write e.g. {name}=0.5")
        if not math.isfinite(value):  # NaN passes every range check; no config field means infinity
            raise ConfigError(f"{name}={value!r} must be a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string; quote it, e.g. {name}='text'")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise ConfigError listing valid ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cast(Any, cls)) if f.init]
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(prefix + str(k) for k in unknown)}; "
            f"valid keys: {', '.join(valid)}"
        )
    kwargs = {k: _coerce(prefix + k, hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict of YAML-representable values (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def parse_scalar(text: str) -> Any:
    """Parse a ``--set key=value`` value the way YAML would (``0.5``, ``true``, ``[1, 2]``, ``plconv``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return yaml_number(value)


def path_type(path: str, cls: type | None = None) -> Any:
    """The annotated type of dotted ``path`` in dataclass ``cls`` (default ``RunConfig``), rules stripped.

    Raises ConfigError naming the unknown key and the valid keys at that level."""
    tp: Any = RunConfig if cls is None else cls
    parts = path.split(".")
    for i, key in enumerate(parts):
        if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
            raise ConfigError(f"{'.'.join(parts[:i])} has no sub-keys; cannot set {path!r}")
        names = [name for name, _, _ in _rules(tp)]
        if key not in names:
            where = ".".join(parts[:i]) + ". " if i else ""
            raise ConfigError(f"unknown key {path!r}; valid {where}keys: {', '.join(names)}")
        tp = typing.get_type_hints(tp)[key]
    return tp


def qualify_key(key: str, cls: type | None = None) -> str:
    """A bare field name -> its dotted path (``ocs`` -> ``model.ocs``) when exactly one section has it."""
    if "." in key:
        return key
    cls = RunConfig if cls is None else cls
    hints = typing.get_type_hints(cls)
    sections = [f.name for f in fields(cls) if dataclasses.is_dataclass(hints[f.name])]
    if key in [f.name for f in fields(cls)] or not sections:
        return key
    owners = [s for s in sections if key in {f.name for f in fields(hints[s])}]
    if len(owners) == 1:
        return f"{owners[0]}.{key}"
    if len(owners) > 1:
        raise ConfigError(f"key {key!r} is in several sections; write {' or '.join(o + '.' + key for o in owners)}")
    raise ConfigError(f"unknown key {key!r}; use {', '.join(s + '.<field>' for s in sections)} (e.g. model.ocs=0.5)")


def set_path(data: dict[str, Any], path: str, value: Any, cls: type | None = None) -> None:
    """Write ``value`` at dotted ``path`` into ``data`` (a ``to_dict`` of ``cls``), checking the keys.

    The one dotted write of the package: values are coerced and validated when the dict becomes a
    dataclass again (``from_dict``), so several paths that are only valid together can be set."""
    path_type(path, cls)
    *heads, last = path.split(".")
    node = data
    for key in heads:
        node = node.setdefault(key, {})
    node[last] = value


def split_override(text: str) -> tuple[str, Any]:
    """``"model.ocs=0.5"`` -> ``("model.ocs", 0.5)`` (value read as YAML); bare keys qualified."""
    key, sep, val = str(text).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. model.ocs=0.5)")
    return qualify_key(key.strip()), parse_scalar(val.strip())


# ----------------------------------------------------------------------------- model config

Plan = typing.Literal["table1", "bionet"]
IplMode = typing.Literal["progressive", "stacked", "recurrent"]
Transition = typing.Literal["conv", "none"]
Fusion = typing.Literal["sum", "last"]
BscInit = typing.Literal["zero", "he"]
Switch = bool | tuple[bool, ...]


@dataclass(frozen=True)
class ModelConfig:
    """The whole progressive-learning graph as plain data (see ``plsearch.graph.wiring``).

    Defaults are PL-Net as the paper describes it (R1 reconstruction): two stages of depth 4 and 5,
    n=2 progressive IPL steps, Ocs 1.0, Table 1's resolution plan, BiO-Net's 3-conv stem.

    Two training-time choices the paper leaves open: ``norm_momentum`` 0.99 is BiO-Net's Keras
    ``momentum=0.01`` in PyTorch's convention (running statistics follow recent batches), and
    ``bsc_init='zero'`` starts every backward skip's weights at zero, so the passes chained by BSC
    do not multiply gradients at initialisation (``'he'`` is BiO-Net's he-normal everywhere).
    """

    in_channels: Annotated[int, Range(1)] = 3
    num_classes: Annotated[int, Range(1)] = 1
    spatial_dims: Annotated[int, OneOf((2, 3))] = 2
    base_width: Annotated[int, Range(1)] = 32
    ocs: Annotated[float, Range(0.0625, 8.0)] = 1.0
    depth: Annotated[int, Range(2, 8)] = 5
    stages: Annotated[int, Range(1, 6)] = 2
    stage_step: Annotated[int, Range(1)] = 1
    steps: Annotated[int, Range(1, 8)] = 2
    ipl: IplMode = "progressive"
    iterations: Annotated[int, Range(0, 8)] = 0
    fsc: Switch = True
    bsc: Switch = True
    plan: Plan = "table1"
    stem: Annotated[int, Range(0, 8)] = 3
    transition: Transition = "conv"
    up: Annotated[str, Registered("UP_REGISTRY")] = "convt3"
    block: Annotated[str, Registered("BLOCKS_REGISTRY")] = "plconv"
    integrate: bool = False
    fusion: Fusion = "sum"
    norm_momentum: Annotated[float, Range(0.0, 1.0)] = 0.99
    bsc_init: BscInit = "zero"

    def __post_init__(self) -> None:
        check_fields(self)  # per-field rules (the Annotated hints); combinations of fields below
        if self.ipl == "recurrent":
            check_range("iterations", self.iterations, 1, 8)
        elif self.iterations != 0:
            raise ConfigError(
                f"iterations={self.iterations} is only used with ipl='recurrent' (got ipl={self.ipl!r}); "
                "leave iterations at 0 or set ipl: recurrent"
            )
        shallowest = self.depth - (self.stages - 1) * self.stage_step
        if shallowest < 2:
            raise ConfigError(
                f"stages={self.stages} with stage_step={self.stage_step} needs depth >= "
                f"{2 + (self.stages - 1) * self.stage_step}, got depth={self.depth}; "
                "raise depth or lower stages/stage_step"
            )
        for name in ("fsc", "bsc"):
            value = getattr(self, name)
            if isinstance(value, tuple):
                want = self.depth - 1
                if len(value) != want:
                    raise ConfigError(
                        f"{name} has {len(value)} per-level switches; depth={self.depth} needs {want} "
                        f"(levels 0..{want - 1}), or a single true/false"
                    )
        if self.integrate and self.plan != "bionet":
            raise ConfigError("integrate=true needs plan='bionet' (it feeds the post block); set plan: bionet")
        any_bsc = any(self.bsc_at(level) for level in range(self.depth - 1))
        if any_bsc and self.transition == "none":
            raise ConfigError(
                "bsc needs transition='conv' (a level's input must have the level's width for the "
                "self-concatenation of the first pass); set transition: conv or bsc: false"
            )
        if self.bsc_at(0) and self.stem == 0:
            raise ConfigError(
                "bsc at level 0 needs a stem (stem >= 1) so the image has the level-0 width; "
                "set stem: 3 or switch bsc off at level 0 (e.g. bsc: [false, true, true, true])"
            )

    # -- derived, cheap
    @property
    def widths(self) -> tuple[int, ...]:
        """Channel width of every level: round(base_width * 2**l * ocs)."""
        return tuple(max(1, int(round(self.base_width * 2**lvl * self.ocs))) for lvl in range(self.depth))

    @property
    def stage_depths(self) -> tuple[int, ...]:
        """Number of levels each stage uses, shallowest first; the last is ``depth``."""
        return tuple(self.depth - (self.stages - 1 - i) * self.stage_step for i in range(self.stages))

    @property
    def passes(self) -> int:
        """Encoder-decoder passes each stage runs."""
        return {"progressive": self.steps, "stacked": 1, "recurrent": self.iterations}[self.ipl]

    def convs_in_pass(self, p: int) -> int:
        """How many of a block's ``steps`` convs pass ``p`` (0-based) applies."""
        return p + 1 if self.ipl == "progressive" else self.steps

    def fsc_at(self, level: int) -> bool:
        return self.fsc[level] if isinstance(self.fsc, tuple) else bool(self.fsc)

    def bsc_at(self, level: int) -> bool:
        return self.bsc[level] if isinstance(self.bsc, tuple) else bool(self.bsc)

    def total_stride(self) -> int:
        """Input sizes must be multiples of this (inputs are padded up to it and cropped back)."""
        return 2 ** (self.depth - 1 + (1 if self.plan == "bionet" else 0))

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        return from_dict(cls, data)


# ----------------------------------------------------------------------------- data and training

ChannelMode = typing.Literal["auto", "rgb", "grey"]
VolumeFit = typing.Literal["resize", "pad_crop"]
Schedule = typing.Literal["joint", "progressive"]


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared (see ``plsearch.data.dataset``).

    ``root`` empty means plsearch's own synthetic nuclei set (``plsearch.data.synthetic``).
    ``volume_fit`` (3D volume folders only): how each volume reaches the ``image_size`` cube, ``resize``
    (trilinear; the voxel spacing grows with the scale) or ``pad_crop`` (centre pad or crop, the
    spacing kept; ``plsearch.data.volume.fit_volume``).
    """

    root: str = ""
    image_size: Annotated[int, Range(8, 4096)] = 224
    channels: ChannelMode = "auto"
    grey_world: bool = False
    split_csv: str = ""
    val_fraction: Annotated[float, Range(0.0, 0.9)] = 0.1
    test_fraction: Annotated[float, Range(0.0, 0.9)] = 0.2
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0  # numpy's seeds: 0 <= seed < 2**32
    synthetic_count: Annotated[int, Range(4)] = 96
    cache: bool = True
    volume_fit: VolumeFit = "resize"

    def __post_init__(self) -> None:
        check_fields(self)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction} leaves no "
                "training images; keep their sum below 1"
            )


@dataclass(frozen=True)
class TrainConfig:
    """The paper's protocol by default: Dice loss per stage, Adam 1e-4, batch 16, 200 epochs,
    early stopping after 20 epochs without validation improvement, augmentation on."""

    epochs: Annotated[int, Range(1)] = 200
    batch_size: Annotated[int, Range(1)] = 16
    lr: Annotated[float, Range(0.0, above=True)] = 1e-4
    weight_decay: Annotated[float, Range(0.0)] = 0.0
    patience: Annotated[int, Range(0)] = 20
    schedule: Schedule = "joint"
    progressive_epochs: Annotated[int, Range(0)] = 0
    loss_on_fused: bool = False
    augment: bool = True
    rotation_deg: Annotated[float, Range(0.0, 180.0)] = 25.0
    shift: Annotated[float, Range(0.0, 0.5)] = 0.15
    flips: bool = True
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0  # numpy's seeds: 0 <= seed < 2**32
    device: str = "auto"  # checked to exist on this machine by plsearch.config.gate.check_device, at run start
    amp: bool = True
    max_steps_per_epoch: Annotated[int, Range(0)] = 0
    eval_batch_size: Annotated[int, Range(1)] = 16
    num_threads: Annotated[int, Range(0)] = 0
    compile: bool = False  # torch.compile the train step (plsearch.nn.speed.compile_model); pays on long GPU runs

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RunConfig:
    """Model + data + training: what one training run (or one search trial) needs.

    Dotted paths such as ``model.ocs`` or ``train.epochs`` address its fields (``--set``, search spaces).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return from_dict(cls, data)
