"""Plots of the speed sweep (matplotlib, Agg): latency and MACs against params, fraction of peak.

``plot_all(rows, meta, out_dir, tag)`` writes ``<tag>-latency.png``, ``<tag>-macs.png`` and
``<tag>-peak.png`` and returns their paths. Rows are ``benchlib.row`` records.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import benchlib


def _label(spec: str) -> str:
    name, o = benchlib.parse_spec(spec)
    if _is_sweep(spec):
        return f"PL-Net n={o['steps']}, Ocs {o['ocs']}"
    if not o:
        return {"plnet": "PL-Net", "plnet-small": "PL-Net\u2020", "bionet": "BiO-Net", "unet": "U-Net",
                "basicunet": "MONAI BasicUNet"}.get(name, name)
    return f"{name} " + " ".join(f"{k}={v}" for k, v in o.items())


VARIANT_LABELS = {"cat": "before (concat [x, x])", "eager": "default", "cl": "channels_last", "fadam": "fused Adam",
                  "compile": "torch.compile", "fused": "BN folded", "fused+cl": "BN folded + channels_last",
                  "ckpt": "checkpointing", "cl+amp": "channels_last + bf16"}


def _variant(v: str) -> str:
    return VARIANT_LABELS.get(v, v)


def _is_sweep(spec: str) -> bool:
    name, o = benchlib.parse_spec(spec)
    return name == "plnet" and set(o) == {"steps", "ocs"}


def _panels(rows: list[dict], variant: str) -> dict[tuple, list[dict]]:
    panels: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["variant"] == variant:
            panels[(r["mode"], r["size"], r["batch"])].append(r)
    return dict(sorted(panels.items()))


def _scatter(ax, rows: list[dict], key, ylabel: str) -> None:
    """Presets and peers as labelled points; the n x Ocs sweep as one line per Ocs, points marked n."""
    lines: dict[float, list[tuple[float, float, int]]] = defaultdict(list)
    for r in rows:
        x, y = r["params"] / 1e6, key(r)
        if _is_sweep(r["model"]):
            o = benchlib.parse_spec(r["model"])[1]
            lines[o["ocs"]].append((x, y, o["steps"]))
            continue
        peer = r["model"] in benchlib.PEERS
        ax.scatter([x], [y], marker="*" if peer else "o", s=90 if peer else 45, zorder=3,
                   color="tab:red" if peer else "tab:blue")
        ax.annotate(_label(r["model"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for i, (ocs, pts) in enumerate(sorted(lines.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-s", ms=4, color=f"C{i + 2}",
                label=f"PL-Net sweep, Ocs {ocs}", zorder=2)
        for x, y, n in pts:
            ax.annotate(f"n={n}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7,
                        color=f"C{i + 2}")
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if lines:
        ax.legend(fontsize=8, loc="upper left")


def _figure(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _subtitle(meta: dict) -> str:
    m = meta["machine"]
    return (f"{m.get('gpu') or m['cpu']}, {m['threads']} thread{'s' if m['threads'] > 1 else ''}, torch {m['torch']}, "
            f"load {meta['load_before'][0]:.1f}, clock {meta.get('clock', 'wall')}")


def plot_all(rows: list[dict], meta: dict, out_dir: str | Path, tag: str) -> list[Path]:
    out = Path(out_dir)
    rows = [r for r in rows if not r.get("error")]
    variant = "eager" if any(r["variant"] == "eager" for r in rows) else rows[0]["variant"]
    paths = []

    panels = _panels(rows, variant)
    fig, axes = _figure(len(panels))
    for ax, ((mode, size, batch), rs) in zip(axes, panels.items()):
        _scatter(ax, rs, lambda r: r["time_ms"], "ms per step (median)")
        ax.set_title(f"{'train step' if mode == 'train' else 'forward (eval)'}, {size}x{size}, batch {batch}")
    fig.suptitle(f"Latency against size ({_variant(variant)}); {_subtitle(meta)}", fontsize=10)
    fig.tight_layout()
    paths.append(out / f"{tag}-latency.png")
    fig.savefig(paths[-1], dpi=110)

    by_size: dict[int, dict[str, dict]] = defaultdict(dict)
    for r in sorted(rows, key=lambda r: r["mode"] != "forward"):  # eval-mode MACs where measured
        by_size[r["size"]].setdefault(r["model"], r)
    fig, axes = _figure(len(by_size))
    for ax, (size, rs) in zip(axes, sorted(by_size.items())):
        _scatter(ax, list(rs.values()), lambda r: r["macs_per_image"] / 1e9, "GMACs per image (fvcore)")
        ax.set_title(f"MACs against parameters, {size}x{size}")
    fig.tight_layout()
    paths.append(out / f"{tag}-macs.png")
    fig.savefig(paths[-1], dpi=110)

    order = meta.get("variants") or list(dict.fromkeys(r["variant"] for r in rows))  # same colours everywhere
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["mode"], r["size"], r["batch"])].append(r)
    fig, axes = _figure(len(groups))
    for ax, ((mode, size, batch), rs) in zip(axes, sorted(groups.items())):
        models = list(dict.fromkeys(r["model"] for r in rs))
        variants = [v for v in order if any(r["variant"] == v for r in rs)]
        h = 0.8 / len(variants)
        for j, v in enumerate(variants):
            vals = {r["model"]: 100 * r["frac_peak"] for r in rs if r["variant"] == v}
            ys = [i + j * h for i, m in enumerate(models) if m in vals]
            bars = ax.barh(ys, [vals[m] for m in models if m in vals], height=h, label=_variant(v),
                           color=f"C{order.index(v)}")
            ax.bar_label(bars, fmt="%.0f%%", fontsize=7, padding=2)
        ax.set_yticks([i + 0.4 - h / 2 for i in range(len(models))], [_label(m) for m in models], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.axvline(50, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("achieved FLOP/s, % of matmul peak")
        ax.set_title(f"{'train step' if mode == 'train' else 'forward (eval)'}, {size}x{size}, batch {batch}")
        if len(variants) > 1:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Fraction of the matmul peak; {_subtitle(meta)}", fontsize=10)
    fig.tight_layout()
    paths.append(out / f"{tag}-peak.png")
    fig.savefig(paths[-1], dpi=110)
    import matplotlib.pyplot as plt

    plt.close("all")
    return paths
