"""Params and MACs at 224x224 for the presets and the n x Ocs sweep, as the README's Markdown tables.

Counts come from ``plsearch.estimate`` (analytic; tests hold it equal to the built model and to
fvcore). ``--fvcore`` re-measures every row on the built model to show they agree.

    python benchmarks/model_table.py [--size 224] [--fvcore]
"""

from __future__ import annotations

import argparse

from plsearch import create_model, estimate, list_models, preset_config

PAPER = {"plnet": "15.03 M", "plnet-small": "3.77 M", "bionet": "15.03 M (Keras count of t=3 INT)"}
TABLE2 = [("n=1", {"steps": 1}, "10.33 M"), ("n=2, without IPL", {"ipl": "stacked"}, "15.03 M"),
          ("n=2, with IPL", {}, "15.03 M"), ("n=3, with IPL", {"steps": 3}, "19.73 M")]


def row_cost(name: str, overrides: dict, size: int, fvcore: bool) -> tuple[int, int]:
    cfg = preset_config(name, **overrides)
    est = estimate(cfg, size)
    if fvcore:
        import plsearch

        prof = plsearch.profile(create_model(name, **overrides), size, latency=False, memory=False)
        assert (prof.params, prof.macs) == (est.params, est.macs), (name, overrides)
    return est.params, est.macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fvcore", action="store_true", help="check every row against fvcore on the built model")
    args = ap.parse_args()
    s = args.size
    print(f"Presets at {s}x{s} (MACs: one fused multiply-add = 1, as fvcore counts)\n")
    print("| preset | params | MACs | paper |\n|---|---:|---:|---|")
    for name in list_models():
        p, m = row_cost(name, {}, s, args.fvcore)
        print(f"| `{name}` | {p:,} ({p / 1e6:.2f} M) | {m / 1e9:.2f} G | {PAPER.get(name, '-')} |")
    print("\nTable 2 rows (PL-Net, Ocs 1.0): the paper's figures cannot all be matched with one wiring\n")
    print("| row | params | paper | difference |\n|---|---:|---:|---:|")
    for label, o, paper in TABLE2:
        p, _ = row_cost("plnet", o, s, args.fvcore)
        ref = float(paper.split()[0]) * 1e6
        print(f"| {label} | {p / 1e6:.2f} M | {paper} | {100 * (p - ref) / ref:+.1f} % |")
    print(f"\nPL-Net sweep at {s}x{s}: params (M) / MACs (G), progressive IPL, 2 stages\n")
    ocs_values = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    print("| steps n | " + " | ".join(f"Ocs {o}" for o in ocs_values) + " |")
    print("|---|" + "---:|" * len(ocs_values))
    for n in range(1, 5):
        cells = []
        for o in ocs_values:
            p, m = row_cost("plnet", {"steps": n, "ocs": o}, s, args.fvcore)
            cells.append(f"{p / 1e6:.2f} / {m / 1e9:.1f}")
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
