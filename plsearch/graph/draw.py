"""Draw a wiring like the paper's Figure 1: levels down the side, passes and stages across.

Each pass of each stage is a U (encoder going down, decoder coming up); forward skips (FSC) are
blue, backward skips (BSC) red (a first pass's self-concatenation is not drawn), fusion of the stage heads green.
Drawn from the same ``Wiring`` value the model executes, so a searched architecture can be seen.
"""

from __future__ import annotations

from pathlib import Path

from plsearch.config.schema import ModelConfig
from plsearch.graph.wiring import Wiring, build_wiring

COLORS = {"flow": "#555555", "down": "#555555", "up": "#555555", "fsc": "#1f77b4", "bsc": "#d62728", "fuse": "#2ca02c"}


def _node_of(wiring: Wiring) -> tuple[dict[str, tuple], dict[tuple, dict]]:
    """Group ops into drawable nodes: (stage, pass, level, side), plus stem and per-stage outputs."""
    node_of: dict[str, tuple] = {"input": ("input",)}
    info: dict[tuple, dict] = {("input",): {"convs": 0, "role": "input"}}
    for op in wiring.ops:
        if op.role in ("stem",):
            key: tuple = ("stem",)
        elif op.role in ("post", "head"):
            key = ("out", op.stage)
        elif op.kind == "pool":
            node_of[op.output] = node_of[op.inputs[0]]
            continue
        elif op.role == "up" and op.level < 0:
            key = ("top", op.stage, op.pass_)
        elif op.role in ("up", "decode"):
            key = (op.stage, op.pass_, op.level, "dec")
        else:
            key = (op.stage, op.pass_, op.level, "enc")
        node_of[op.output] = key
        entry = info.setdefault(key, {"convs": 0, "role": op.role, "level": op.level})
        if op.kind == "block" and op.role != "transition":
            entry["convs"] += 1
    return node_of, info


def _positions(wiring: Wiring, info: dict[tuple, dict]) -> dict[tuple, tuple[float, float]]:
    cfg = wiring.config
    pos: dict[tuple, tuple[float, float]] = {("input",): (-2.0, 0.0), ("stem",): (-1.0, 0.0)}
    x0 = 0.0
    for k, depth in enumerate(cfg.stage_depths):
        bottom = depth - 1
        for p in range(cfg.passes):
            for lvl in range(depth):
                pos[(k, p, lvl, "enc")] = (x0 + lvl, -lvl)
                pos[(k, p, lvl, "dec")] = (x0 + 2 * bottom - lvl, -lvl)
            pos[("top", k, p)] = (x0 + 2 * bottom + 0.6, 0.6)
            x0 += 2 * bottom + 1.5
        pos[("out", k)] = (x0 - 0.4, 1.2)
        x0 += 0.8
    return {key: xy for key, xy in pos.items() if key in info}


def draw_wiring(wiring: Wiring | ModelConfig, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG picture of ``wiring`` (or of ``build_wiring(config)``) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    w = build_wiring(wiring) if isinstance(wiring, ModelConfig) else wiring
    cfg = w.config
    node_of, info = _node_of(w)
    pos = _positions(w, info)
    width = max(6.0, 0.55 * max(x for x, _ in pos.values()) + 3)
    fig, ax = plt.subplots(figsize=(min(width, 40), 2.2 + 0.9 * cfg.depth))
    drawn = set()
    for op in w.ops:
        dst = node_of[op.output]
        for name, kind in zip(op.inputs, op.edges):
            src = node_of[name]
            if kind == "self" or src == dst or (src, dst, kind) in drawn or src not in pos or dst not in pos:
                continue
            drawn.add((src, dst, kind))
            (x1, y1), (x2, y2) = pos[src], pos[dst]
            style = "-"
            rad = 0.25 if kind == "bsc" else (0.0 if kind != "fsc" else -0.15)
            ax.annotate(
                "",
                xy=(x2, y2),
                xytext=(x1, y1),
                arrowprops=dict(
                    arrowstyle="-|>",
                    color=COLORS.get(kind, "#555"),
                    lw=1.2 if kind in ("bsc", "fsc") else 0.8,
                    linestyle=style,
                    connectionstyle=f"arc3,rad={rad}",
                    shrinkA=6,
                    shrinkB=6,
                ),
            )
    widths = cfg.widths
    for key, (x, y) in pos.items():
        entry = info[key]
        role = entry["role"]
        lvl = entry.get("level", 0)
        if key[0] == "out":
            post = f"post x{entry['convs']} + " if entry["convs"] else ""
            label, face = f"{post}head {key[1] + 1}", "#c7e9c0"
        elif key[0] in ("input", "stem", "top"):
            label, face = {"input": "image", "stem": f"stem x{entry['convs']}", "top": "up"}[key[0]], "#eeeeee"
        else:
            c = widths[lvl] if lvl >= 0 else widths[0]
            label = f"{c}" + (f"x{entry['convs']}" if entry["convs"] > 1 else "")
            face = "#fde0c5" if key[3] == "enc" else "#dbe9f6"
            if role == "bottleneck":
                face = "#f4cae4"
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=7,
            bbox=dict(boxstyle="round,pad=0.3", fc=face, ec="#333333", lw=0.6),
        )
    for k in range(cfg.stages):
        xs = [pos[key][0] for key in pos if isinstance(key[0], int) and key[0] == k]
        if xs:
            ax.text(
                (min(xs) + max(xs)) / 2,
                1.75,
                f"stage {k + 1} (depth {cfg.stage_depths[k]}, {cfg.passes} pass{'es' if cfg.passes > 1 else ''})",
                ha="center",
                fontsize=9,
            )
    ax.set_yticks([-lvl for lvl in range(cfg.depth)], [f"L{lvl}" for lvl in range(cfg.depth)])
    ax.set_xticks([])
    xs_all = [x for x, _ in pos.values()]
    ax.set_xlim(min(xs_all) - 0.8, max(xs_all) + 0.8)
    ax.set_ylim(-cfg.depth + 0.2, 2.2)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [
        Line2D([], [], color=COLORS[k], label=lab)
        for k, lab in (("fsc", "FSC (eq. 1)"), ("bsc", "BSC (eq. 2)"), ("flow", "down / up / flow"), ("fuse", "fusion"))
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=7, frameon=False, ncol=5)
    ax.set_title(
        title
        or (
            f"steps={cfg.steps} ({cfg.ipl}), stages={cfg.stages}, ocs={cfg.ocs}, plan={cfg.plan}, "
            f"block={cfg.block}  (node label: width x convs)"
        ),
        fontsize=9,
    )
    fig.subplots_adjust(left=0.04, right=0.99, top=0.88, bottom=0.1)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
