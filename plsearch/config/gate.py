"""The one way in: user input (presets, config files, ``--set``, search spaces) -> a checked ``RunConfig``.

Every entry point (the train, search, profile and evaluate CLIs, the search space's ``build``, the
references, the objective) calls ``resolve``. The dataclasses in ``plsearch.config.schema`` check each field
on its own (and the combinations inside one section); the checks that need two sections or the
machine live here, once:

- the block is registered (by name, without importing torch: ``ModelConfig.block``'s rule);
- the image size is at least the network's total stride (``check_image_size``, ``StrideError``);
- ``model.in_channels`` follows the data (``data=``), unless set explicitly, when it must agree;
- ``model.spatial_dims`` matches the data, and ``data.volume_fit=pad_crop`` is only for 3D volumes;
- the device exists (``check_device``, the one step that imports torch, run last, at run start).

``--set KEY=VALUE`` has one dialect (``parse_sets``): dotted ``RunConfig`` paths (``model.ocs=0.5``),
or a bare field name that only one section has (``ocs=0.5``, ``epochs=5``; ``seed`` is in data and
train, so write ``data.seed`` or ``train.seed``); values are YAML scalars and ``1e-3`` is a number.
Nothing here imports torch except ``check_device``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from plsearch.config.schema import (
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    _coerce,
    check_field,
    from_dict,
    path_type,
    qualify_key,
    set_path,
    split_override,
    to_dict,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "parse_sets",
    "resolve",
    "check_value",
    "check_image_size",
    "check_device",
    "channels_of",
    "ConfigError",
    "StrideError",
    "DeviceError",
    "Overrides",
    "MEASURED_DATA",
    "measurement",
    "changed_measurement",
]

SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
Overrides = Mapping[str, Any] | Iterable[Any]  # {path: value}, ["path=value", ...] or [(path, value), ...]


class StrideError(ConfigError):
    """The image is smaller than the network's total stride; ``need`` is the smallest size that fits."""

    def __init__(self, message: str, need: int, size: int) -> None:
        super().__init__(message)
        self.need, self.size = need, size


class DeviceError(ValueError):
    """The requested device does not exist on this machine (the machine's fault, not the config's: a
    search stops on it instead of recording an infeasible trial)."""


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """``["model.ocs=0.5", "epochs=5"]`` -> ``{"model.ocs": 0.5, "train.epochs": 5}`` (keys checked).

    Raises:
        ConfigError: an item is not KEY=VALUE, or names no ``RunConfig`` field.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, _ = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not KEY=VALUE; write e.g. --set model.ocs=0.5")
        path, value = split_override(item)
        path_type(path)
        out[path] = value
    return out


def _pairs(overrides: Overrides) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
    else:
        pairs = [split_override(o) if isinstance(o, str) else (o[0], o[1]) for o in overrides]
    return [(qualify_key(str(k)), v) for k, v in pairs]


def check_value(path: str, value: Any) -> Any:
    """``value`` coerced to the type of ``path`` and checked against that field's own rules.

    What a search space uses for each fixed value and choice: combinations are left to ``resolve``.
    Returns a YAML-plain value (tuples become lists). Raises ConfigError naming ``path``.
    """
    group, _, key = path.partition(".")
    tp = path_type(path)
    if group not in SECTIONS or not key or "." in key:
        raise ConfigError(f"{path!r} is not a field of model, data or train")
    value = _coerce(path, tp, value)
    try:
        check_field(SECTIONS[group], key, value, label=path)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    return list(value) if isinstance(value, tuple) else value


def channels_of(data: Any) -> int:
    """Image channels of ``data``: an int, a data set (``.channels``) or splits (``{"train": ...}``)."""
    if isinstance(data, Mapping):
        data = data["train"]
    channels = getattr(data, "channels", data)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise TypeError(f"data={data!r} gives no channel count; pass an int, a data set or the splits")
    return channels


def check_image_size(model: ModelConfig, size: int | Sequence[int], what: str = "data.image_size") -> None:
    """Raise ``StrideError`` when an input ``size`` (one or per dim) is smaller than the network's total
    stride (the forward pads sizes up to a multiple of it, but cannot run on less). ``what`` names the
    setting in the message (``--input-size`` for the profile CLI)."""
    sizes = (size,) if isinstance(size, int) else tuple(size)
    stride = model.total_stride()
    if min(sizes) < stride:
        shown = sizes[0] if len(sizes) == 1 else "x".join(map(str, sizes))
        raise StrideError(
            f"{what}={shown} is smaller than the network's total stride {stride} (depth={model.depth}, "
            f"plan={model.plan}); raise {what} to {stride} or more, or lower model.depth",
            need=stride,
            size=min(sizes),
        )


def resolve(
    base: RunConfig | Mapping[str, Any] | None = None,
    overrides: Overrides = (),
    *,
    data: Any = None,
    device: str | bool | None = None,
) -> RunConfig:
    """The run's checked config: ``base`` with ``overrides`` written over it, validated once.

    Args:
        base: a ``RunConfig``, a mapping of its fields (a checkpoint's or trial's config), or None
            (the defaults).
        overrides: ``{path: value}``, ``["path=value", ...]`` or ``[(path, value), ...]``, applied in order;
            bare field names are qualified (``ocs`` -> ``model.ocs``).
        data: what the run trains on (see ``channels_of``): ``model.in_channels`` follows it, and an
            explicit ``model.in_channels`` override that disagrees is an error.
        device: None checks no device; a device name sets ``train.device``; True checks
            ``train.device``. The check imports torch, so it runs last.

    Raises:
        ConfigError: a field, a combination, the image size (``StrideError``) or the device (``DeviceError``).
    """
    pairs = _pairs(overrides)
    if isinstance(device, str):
        pairs.append(("train.device", device))
    if isinstance(base, RunConfig):
        tree = to_dict(base)
    else:
        tree = to_dict(from_dict(RunConfig, base or {}))  # unknown keys in a stored config are refused here
    for path, value in pairs:
        set_path(tree, path, value)
    if data is not None:
        channels = channels_of(data)
        explicit = [v for p, v in pairs if p == "model.in_channels"]
        if explicit and explicit[-1] != channels:
            raise ConfigError(
                f"model.in_channels={explicit[-1]} but the images have {channels} channels; drop the "
                "override or set data.channels"
            )
        tree["model"]["in_channels"] = channels
        given = data["train"] if isinstance(data, Mapping) else data
        dims = getattr(given, "spatial_dims", None)
        # 3D data (NIfTI volumes: plsearch.data.volume) need a 3D network, 2D images a 2D one
        if dims is not None and dims != tree["model"]["spatial_dims"]:
            raise ConfigError(
                f"the data are {dims}D but model.spatial_dims={tree['model']['spatial_dims']}; "
                f"set model.spatial_dims={dims}"
            )
        fit = tree["data"].get("volume_fit", "resize")
        if fit != "resize" and not isinstance(given, int) and dims != 3:  # 2D folders are always resized
            raise ConfigError(
                f"data.volume_fit={fit} applies to 3D volume folders (imagesTr/, labelsTr/) but the data are 2D "
                "images; drop data.volume_fit"
            )
    cfg = from_dict(RunConfig, tree)
    check_image_size(cfg.model, cfg.data.image_size)
    if device is not None and device is not False:
        check_device(cfg.train.device)
    return cfg


# What decides a measurement's data and split: every data field but the decoded-image cache switch. A resume
# (train --resume, a rerun search) must match these, and a search its fidelity too (``measurement``).
MEASURED_DATA: tuple[str, ...] = tuple(f"data.{k}" for k in DataConfig.__dataclass_fields__ if k != "cache")


def measurement(cfg: RunConfig, paths: Iterable[str] = MEASURED_DATA) -> dict[str, Any]:
    """``{path: value}`` of ``cfg`` at ``paths``, plain data (a stored study's user attribute, a checkpoint's
    config), ``data.root`` as an absolute path ("" for the synthetic set)."""
    from pathlib import Path

    tree = to_dict(cfg)
    out: dict[str, Any] = {}
    for path in paths:
        section, key = path.split(".", 1)
        value = tree[section][key]
        if path == "data.root" and value:
            value = str(Path(value).resolve())
        out[path] = value
    return out


def changed_measurement(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first path (in ``old``'s order) whose value ``new`` changes, as ``(path, old, new)``; None when none
    does. A path ``old`` does not record (an older run or study) is not compared."""
    for path, before in old.items():
        if path in new and new[path] != before:
            return path, before, new[path]
    return None


def check_device(spec: Any = "auto") -> "torch.device":
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; other names must exist on this machine.

    The only function of the gate that imports torch. Raises ``DeviceError`` naming the fix.
    """
    import torch

    if spec is None or str(spec) in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {str(spec)!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index or 0) >= count:
            raise DeviceError(f"device {str(spec)!r} is not available here ({count} CUDA devices); use auto or cpu")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(spec)!r} is not available here; use auto or cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {str(spec)!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev
