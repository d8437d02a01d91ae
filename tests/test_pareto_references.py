"""Front points a preset reference dominates are flagged (table column, line under it, plot label)."""

from __future__ import annotations

import csv
import json

from plsearch.cli.report import main
from plsearch.search.pareto import beaten_by, beaten_line

OBJ = [("val_dice", "maximize"), ("macs", "minimize")]


def ref(dice: float | None, macs: float | None, fail: str | None = None) -> dict:
    return {"metrics": {"val_dice": dice}, "profile": {"macs": macs, "params": 10}, "fail_reason": fail}


def test_dominance_rule_on_hand_made_points():
    point = {"val_dice": 0.90, "macs": 10e6}
    refs = {
        "better_smaller": ref(0.95, 8e6),
        "better_same_size": ref(0.91, 10e6),
        "same": ref(0.90, 10e6),  # equal on both: not better on one, so not beaten
        "better_larger": ref(0.99, 11e6),
        "worse_smaller": ref(0.89, 1e6),
        "failed": ref(0.99, 1e6, fail="RuntimeError: boom"),
        "unknown": ref(None, 1e6),
    }
    assert beaten_by(point, refs, OBJ) == ["better_smaller", "better_same_size"]
    assert beaten_by(point, {}, OBJ) == []


def test_beaten_line_names_preset_and_values():
    rows = [{"trial": 3, "beaten_by": "unet"}, {"trial": 1, "beaten_by": None}]
    line = beaten_line(rows, {"unet": ref(0.97, 12.1e6)}, OBJ)
    assert line.startswith("trial 3 is beaten by preset unet (val_dice 0.9700, macs 12.1M)")
    assert "trial 1" not in line
    assert beaten_line([{"trial": 1, "beaten_by": None}], {}, OBJ) == ""


def test_report_flags_the_front_point_a_preset_beats(tmp_path, capsys):
    from test_report import _fake_study

    study = _fake_study(tmp_path / "study.db")
    done = [t for t in study.trials if t.values]
    big = max(done, key=lambda t: t.values[1])  # the largest trial: on the front (the most accurate ones are big)
    top = max(t.values[0] for t in done)
    refs = {"unet": ref(top + 0.01, big.values[1]), "tiny": ref(0.01, 1.0)}
    (tmp_path / "references.json").write_text(json.dumps(refs))
    assert main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "pareto.csv")))
    flagged = {int(r["trial"]): r["beaten_by"] for r in rows if r["beaten_by"]}
    # every front point at least as large as unet and less accurate is beaten; smaller ones are not
    want = {int(r["trial"]) for r in rows if float(r["macs"]) >= big.values[1]}
    assert want and set(flagged) == want and set(flagged.values()) == {"unet"}
    assert len(flagged) < len(rows)
    assert f"trial {min(want)} is beaten by preset unet" in printed
    assert "is beaten by preset unet" in (tmp_path / "pareto.md").read_text()


def test_no_column_without_a_dominating_reference(tmp_path):
    from test_report import _fake_study

    _fake_study(tmp_path / "study.db")
    (tmp_path / "references.json").write_text(json.dumps({"tiny": ref(0.01, 1.0)}))
    assert main(["--out", str(tmp_path)]) == 0
    header = (tmp_path / "pareto.csv").read_text().splitlines()[0]
    assert "beaten_by" not in header
    assert "beaten by" not in (tmp_path / "pareto.md").read_text()
