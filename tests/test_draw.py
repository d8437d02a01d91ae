"""The wiring picture is drawn from the wiring value for every preset and a searched-like config."""

from __future__ import annotations

import pytest
from PIL import Image

from plsearch import list_models, preset_config
from plsearch.cli.profile import main
from plsearch.graph.draw import draw_wiring


@pytest.mark.parametrize("name", list_models() + ["plnet-3stages"])
def test_draw_writes_a_real_png(name, tmp_path):
    cfg = preset_config("plnet", stages=3, steps=3) if name == "plnet-3stages" else preset_config(name)
    out = draw_wiring(cfg, tmp_path / f"{name}.png")
    img = Image.open(out)
    assert img.format == "PNG" and img.width > 500 and img.height > 200
    # Not blank: a drawing has many distinct colours (edges, boxes, text).
    assert len(img.convert("RGB").getcolors(maxcolors=100000) or []) > 20


def test_profile_cli_draws(tmp_path, capsys):
    png = tmp_path / "w.png"
    assert (
        main(["--model", "unet", "--set", "base_width=8", "--input-size", "32", "--no-latency", "--draw", str(png)])
        == 0
    )
    assert png.stat().st_size > 10_000
