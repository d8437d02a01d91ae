"""Plain, frozen, typed configuration data and the helpers that validate and round-trip it.

Every config is a frozen dataclass holding only YAML-representable values, so a checkpoint or a
trial record can carry the config that rebuilds its model. Unknown keys are rejected with the
list of valid ones; bad values raise ``ValueError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, TypeVar, Union

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
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else lo
        hi_s = "inf" if hi is None else hi
        raise ConfigError(f"{name}={value!r} is out of range; allowed: {lo_s} <= {name} <= {hi_s}")


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
            raise ConfigError(f"{name}={value!r} must be a list")
        item_tp = args[0] if args else Any
        return tuple(_coerce(f"{name}[{i}]", item_tp, v) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of {_type_name(tp)} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{name}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}={value!r} must be true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name}={value!r} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r} must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise ConfigError listing valid ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cls) if f.init]
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
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string; people mean a number
        try:
            return float(value)
        except ValueError:
            return value
    return value


def replace_path(cfg: T, path: str, value: Any) -> T:
    """Return a copy of ``cfg`` with the dotted ``path`` (e.g. ``model.ocs``) set to ``value``."""
    head, _, rest = path.partition(".")
    valid = [f.name for f in fields(cfg) if f.init]
    if head not in valid:
        raise ConfigError(f"unknown key {path!r}; valid keys here: {', '.join(valid)}")
    current = getattr(cfg, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{head} has no sub-keys; cannot set {path!r}")
        new = replace_path(current, rest, value)
    else:
        hint = typing.get_type_hints(type(cfg))[head]
        new = _coerce(path, hint, value)
    data = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.init}
    data[head] = new
    return type(cfg)(**data)


def apply_overrides(cfg: T, overrides: Mapping[str, Any] | typing.Iterable[str]) -> T:
    """Apply ``{"model.ocs": 0.5}`` or ``["model.ocs=0.5", ...]`` to ``cfg``."""
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            key, sep, val = str(text).partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {text!r} is not of the form key=value (e.g. model.ocs=0.5)")
            items.append((key.strip(), parse_scalar(val.strip())))
    for key, val in items:
        cfg = replace_path(cfg, key, val)
    return cfg


# ----------------------------------------------------------------------------- model config

Plan = typing.Literal["table1", "bionet"]
IplMode = typing.Literal["progressive", "stacked", "recurrent"]
Transition = typing.Literal["conv", "none"]
UpMode = typing.Literal["convt3", "convt2_half"]
Fusion = typing.Literal["sum", "last"]
BscInit = typing.Literal["zero", "he"]
Switch = Union[bool, tuple[bool, ...]]


@dataclass(frozen=True)
class ModelConfig:
    """The whole progressive-learning graph as plain data (see ``plsearch.wiring``).

    Defaults are PL-Net as the paper describes it (R1 reconstruction): two stages of depth 4 and 5,
    n=2 progressive IPL steps, Ocs 1.0, Table 1's resolution plan, BiO-Net's 3-conv stem.

    Two training-time choices the paper leaves open: ``norm_momentum`` 0.99 is BiO-Net's Keras
    ``momentum=0.01`` in PyTorch's convention (running statistics follow recent batches), and
    ``bsc_init='zero'`` starts every backward skip's weights at zero, so the passes chained by BSC
    do not multiply gradients at initialisation (``'he'`` is BiO-Net's he-normal everywhere).
    """

    in_channels: int = 3
    num_classes: int = 1
    spatial_dims: int = 2
    base_width: int = 32
    ocs: float = 1.0
    depth: int = 5
    stages: int = 2
    stage_step: int = 1
    steps: int = 2
    ipl: IplMode = "progressive"
    iterations: int = 0
    fsc: Switch = True
    bsc: Switch = True
    plan: Plan = "table1"
    stem: int = 3
    transition: Transition = "conv"
    up: UpMode = "convt3"
    block: str = "plconv"
    integrate: bool = False
    fusion: Fusion = "sum"
    norm_momentum: float = 0.99
    bsc_init: BscInit = "zero"

    def __post_init__(self) -> None:
        check_range("in_channels", self.in_channels, 1)
        check_range("num_classes", self.num_classes, 1)
        check_choice("spatial_dims", self.spatial_dims, (2, 3))
        check_range("base_width", self.base_width, 1)
        check_range("ocs", self.ocs, 0.0625, 8.0)
        check_range("depth", self.depth, 2, 8)
        check_range("stages", self.stages, 1, 6)
        check_range("stage_step", self.stage_step, 1)
        check_range("steps", self.steps, 1, 8)
        check_choice("ipl", self.ipl, typing.get_args(IplMode))
        check_choice("plan", self.plan, typing.get_args(Plan))
        check_choice("transition", self.transition, typing.get_args(Transition))
        check_choice("up", self.up, typing.get_args(UpMode))
        check_choice("fusion", self.fusion, typing.get_args(Fusion))
        check_range("stem", self.stem, 0, 8)
        check_range("norm_momentum", self.norm_momentum, 0.0, 1.0)
        check_choice("bsc_init", self.bsc_init, typing.get_args(BscInit))
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
        from plsearch.registry import BLOCKS  # late: registry imports blocks, which import torch

        check_choice("block", self.block, sorted(BLOCKS))
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
Schedule = typing.Literal["joint", "progressive"]


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared (see ``plsearch.data``).

    ``root`` empty means plsearch's own synthetic nuclei set (``plsearch.synthetic``).
    """

    root: str = ""
    image_size: int = 224
    channels: ChannelMode = "auto"
    grey_world: bool = False
    split_csv: str = ""
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    synthetic_count: int = 96
    cache: bool = True

    def __post_init__(self) -> None:
        check_range("image_size", self.image_size, 8, 4096)
        check_choice("channels", self.channels, typing.get_args(ChannelMode))
        check_range("val_fraction", self.val_fraction, 0.0, 0.9)
        check_range("test_fraction", self.test_fraction, 0.0, 0.9)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction} leaves no "
                "training images; keep their sum below 1"
            )
        check_range("synthetic_count", self.synthetic_count, 4)


@dataclass(frozen=True)
class TrainConfig:
    """The paper's protocol by default: Dice loss per stage, Adam 1e-4, batch 16, 200 epochs,
    early stopping after 20 epochs without validation improvement, augmentation on."""

    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    patience: int = 20
    schedule: Schedule = "joint"
    progressive_epochs: int = 0
    loss_on_fused: bool = False
    augment: bool = True
    rotation_deg: float = 25.0
    shift: float = 0.15
    flips: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    max_steps_per_epoch: int = 0
    eval_batch_size: int = 16
    num_threads: int = 0
    compile: bool = False  # torch.compile the train step (plsearch.speed.compile_model); pays on long GPU runs

    def __post_init__(self) -> None:
        check_range("epochs", self.epochs, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("lr", self.lr, 0.0)
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be > 0")
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("patience", self.patience, 0)
        check_choice("schedule", self.schedule, typing.get_args(Schedule))
        check_range("progressive_epochs", self.progressive_epochs, 0)
        check_range("rotation_deg", self.rotation_deg, 0.0, 180.0)
        check_range("shift", self.shift, 0.0, 0.5)
        check_range("max_steps_per_epoch", self.max_steps_per_epoch, 0)
        check_range("eval_batch_size", self.eval_batch_size, 1)
        check_range("num_threads", self.num_threads, 0)


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
