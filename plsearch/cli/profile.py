"""``python -m plsearch.profile``: params, MACs, latency and memory of a preset or config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from plsearch.cli import CLIError, Parser, argv_or_sys, check_positive, parse_device, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m plsearch.profile", description=__doc__)
    p.add_argument("--model", default="plnet", help="preset name (see --list) [plnet]")
    p.add_argument("--config", help="YAML file holding a ModelConfig (e.g. a search's pareto/trial_N.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model field, e.g. --set ocs=0.5 --set steps=3",
    )
    p.add_argument("--input-size", type=int, nargs="+", default=[224], help="spatial size (one or per dim)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto [cpu]")
    p.add_argument("--repeats", type=int, default=5, help="timed runs for the median latency")
    p.add_argument("--no-latency", action="store_true", help="skip latency and memory measurement")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--summary", action="store_true", help="also print a torchinfo layer summary")
    p.add_argument("--draw", metavar="PNG", help="also draw the wiring (levels x passes x stages) to this PNG")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    return p


def _model_config(args: argparse.Namespace) -> Any:
    """The ``ModelConfig`` to profile: --config or the preset, with --set (model fields) over it."""
    import yaml

    from plsearch.config.gate import parse_sets
    from plsearch.config.presets import preset_config
    from plsearch.config.schema import ModelConfig

    sets = parse_sets(args.set)
    other = [k for k in sets if not k.startswith("model.")]
    if other:
        raise CLIError(f"--set {other[0]} is not a model field; profile builds the model only (e.g. --set ocs=0.5)")
    fields = {k.removeprefix("model."): v for k, v in sets.items()}
    if args.config:
        if not Path(args.config).is_file():
            raise CLIError(
                f"--config {args.config} is not a file; pass a YAML file holding a ModelConfig "
                "(e.g. a search's pareto/trial_N.yaml)"
            )
        try:
            with open(args.config) as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise CLIError(f"{args.config} is not valid YAML ({str(e).splitlines()[0]}); fix the file") from None
        data = data.get("model", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise CLIError(f"{args.config} must hold a mapping of model fields")
        return ModelConfig.from_dict({**data, **fields})
    return preset_config(args.model, **fields)


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        from plsearch.config.gate import check_image_size
        from plsearch.config.presets import list_models
        from plsearch.nn.model import PLNet
        from plsearch.nn.profile import profile

        args = build_parser().parse_args(argv_or_sys(argv))
        check_positive(args, "batch_size", "repeats")
        if args.list:
            print("\n".join(list_models()))
            return 0
        device = parse_device(args.device)
        model_cfg = _model_config(args)
        size = args.input_size[0] if len(args.input_size) == 1 else tuple(args.input_size)
        check_image_size(model_cfg, size, what="--input-size")
        from plsearch.graph.memory import check_fits

        check_fits(model_cfg, size, batch=args.batch_size, device=device, flag="--input-size")  # before any tensor
        model = PLNet.from_config(model_cfg)
        prof = profile(
            model,
            size,
            batch_size=args.batch_size,
            device=device,
            latency=not args.no_latency,
            memory=not args.no_latency,
            repeats=args.repeats,
        )
        if args.json:
            out = prof.to_dict()
            out["model_config"] = model.config.to_dict()
            print(json.dumps(out, indent=2))
        else:
            cfg = model.config
            rows = [
                ("model", args.config or args.model),
                (
                    "config",
                    f"steps={cfg.steps} stages={cfg.stages} ocs={cfg.ocs} ipl={cfg.ipl} "
                    f"plan={cfg.plan} block={cfg.block}",
                ),
                ("input", "x".join(map(str, prof.input_shape))),
                ("params", f"{prof.params:,} ({prof.params / 1e6:.2f} M)"),
                ("MACs", f"{prof.macs:,} ({prof.macs / 1e9:.2f} G)"),
                ("latency", "-" if prof.latency_ms is None else f"{prof.latency_ms:.1f} ms (median, {prof.device})"),
                ("peak memory", "-" if prof.peak_memory_mb is None else f"{prof.peak_memory_mb:.1f} MiB (inference)"),
                ("uncounted ops", ", ".join(f"{k} x{v}" for k, v in prof.unsupported_ops.items()) or "none"),
            ]
            width = max(len(k) for k, _ in rows)
            for k, v in rows:
                print(f"{k:<{width}}  {v}")
        if args.draw:
            from plsearch.graph.draw import draw_wiring

            print(f"wiring drawn to {draw_wiring(model.wiring, args.draw)}")
        if args.summary:
            try:
                import torchinfo
            except ImportError:
                raise CLIError("--summary needs torchinfo; pip install 'plsearch[summary]'") from None

            x_shape = (args.batch_size, model.config.in_channels) + prof.input_shape[2:]
            print(torchinfo.summary(model, input_size=x_shape, device=device, verbose=0, depth=2))
        return 0

    return run_cli(body)
