"""The truth-table recorder on a tiny space: the plan, a chunk, a resume that skips recorded rows, the format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from plsearch.search.space import parse_space
from plsearch.studies.record import record, table_lock
from plsearch.studies.table import (
    TableError,
    TablePlan,
    append_rows,
    make_plan,
    pending,
    read_rows,
    summary,
)

SPACE = {
    "description": "tiny table space",
    "n_trials": 3,
    "seed": 0,
    "objectives": ["val_dice", "macs"],
    "constraints": {"macs": 2.5e7},
    "references": ["unet"],
    "train.lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
    "model.steps": {"low": 1, "high": 2},
    "model.stages": [1, 2],
    "model.ocs": {"low": 0.5, "high": 1.0, "step": 0.25},
    "model.depth": 3,
    "fidelity": {
        "model.base_width": 4,
        "data.image_size": 32,
        "data.synthetic_count": 24,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.max_steps_per_epoch": 1,
        "train.eval_batch_size": 16,
        "train.augment": False,
        "train.patience": 0,
    },
}


@pytest.fixture(scope="module")
def space():
    return parse_space(SPACE, name="tinytable")


def test_plan_holds_every_kind_within_the_budget(space) -> None:
    plan = make_plan(space, sampled=3, seeds=2, epochs=3)
    counts = {k: plan.count(k) for k in ("sampled", "preset", "family", "nested")}
    assert counts["sampled"] == 3 and counts["preset"] == 2  # unet + plnet-small (the nested set's rate)
    assert counts["family"] >= 1 and counts["nested"] >= 8
    assert all(e.macs <= 2.5e7 for e in plan.entries if e.kind in ("sampled", "family", "nested"))
    assert plan.test_epochs == (1, 3) and plan.epochs == 3
    assert all(e.config["train"]["epochs"] == 3 and e.config["train"]["num_threads"] == 1 for e in plan.entries)
    nested = [e for e in plan.entries if e.kind == "nested"]
    # stratified: both widths appear, and only the nested axes differ from PL-Net-dagger's config
    assert len({e.info["ocs"] for e in nested}) == 2
    fixed = {k: v for k, v in nested[0].config["model"].items() if k not in ("steps", "stages", "ocs", "fsc", "bsc")}
    assert all({k: e.config["model"][k] for k in fixed} == fixed for e in nested)
    assert all(e.config["model"]["ipl"] == "progressive" and e.config["model"]["stage_step"] == 1 for e in nested)
    assert TablePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    # extending keeps every stored entry as it is
    more = make_plan(space, sampled=4, seeds=2, epochs=3, keep=plan)
    assert more.entries[: len(plan.entries)] == plan.entries and more.count("sampled") == 4


def test_rate_rows_come_first_and_unlock_the_seeds(space) -> None:
    plan = make_plan(space, sampled=1, seeds=2, epochs=2, family=False, nested=False)
    wants, blocked = pending(plan, [])
    assert [w.kind for w in wants[:3]] == ["rate"] * 3 and blocked == 2  # unet's two seeds wait on its rate
    rows = [{"kind": "rate", "label": w.label, "seed": 0, "val_dice": d} for w, d in zip(wants[:3], (0.2, 0.5, 0.5))]
    wants2, blocked2 = pending(plan, rows)
    unet = [w for w in wants2 if w.label == "unet"]
    assert blocked2 == 0 and [w.seed for w in unet] == [0, 1]
    assert unet[0].lr == wants[1].lr  # the tie goes to the lower rate
    assert unet[0].job.key == wants[1].job.key  # seed 0 at the chosen rate is the probe's run


def test_record_a_chunk_then_resume_skips_recorded_rows(space, tmp_path: Path) -> None:
    plan = make_plan(space, sampled=1, seeds=2, epochs=3, family=False, nested=False)
    table, out = tmp_path / "docs" / "t.jsonl.gz", tmp_path / "runs"
    first = record(plan, table, out, max_cpu_hours=1e-9)  # a chunk of one run
    assert first["runs"] == 1
    rows = read_rows(table)
    assert len(rows) == 1 and rows[0]["kind"] == "rate"  # the rate rule's runs come first
    before = table.read_bytes()
    rest = record(plan, table, out)
    rows = read_rows(table)
    assert table.read_bytes()[:10] == before[:10]
    assert rest["runs"] == 5 and rest["left"] == 0  # 2 more rate runs, the sampled config x 2 seeds, unet seed 1
    keys = [(r["kind"], r["label"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 + 2 + 2
    assert record(plan, table, out)["runs"] == 0  # nothing left: a rerun trains nothing
    # the format: plain gzip JSON lines, one revision, whole curves, test Dice at the planned epochs
    plain = [json.loads(x) for x in gzip.open(table, "rt")]
    assert plain == rows and len({r["revision"] for r in rows}) == 1
    for r in rows:
        assert {"label", "kind", "seed", "params", "macs", "config", "revision", "epochs", "run"} <= set(r)
        assert [e["epoch"] for e in r["epochs"]] == [1, 2, 3]
        assert [e["epoch"] for e in r["epochs"] if "test_dice" in e] == [1, 3]
        cpu = [e["cpu_seconds"] for e in r["epochs"]]
        assert cpu == sorted(cpu) and cpu[0] > 0  # cumulative training CPU-seconds
        assert r["epochs"][-1]["test_dice"] == pytest.approx(r["test_dice"], abs=1e-6)
        assert 0 <= r["trivial_val_dice"] <= 1 and 0 <= r["trivial_test_dice"] <= 1
    unet = sorted((r for r in rows if r["label"] == "unet"), key=lambda r: r["seed"])
    probe = next(r for r in rows if r["kind"] == "rate" and r["run"] == unet[0]["run"])
    assert probe["epochs"] == unet[0]["epochs"]  # seed 0 shares the chosen rate's run
    assert unet[1]["lr"] == unet[0]["lr"] and unet[1]["run"] != unet[0]["run"]


def test_a_table_holds_one_revision(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl.gz"
    append_rows(table, [{"kind": "sampled", "label": "s00", "seed": 0, "revision": "aaa", "run": "x"}])
    with pytest.raises(TableError, match="one revision"):
        append_rows(table, [{"kind": "sampled", "label": "s00", "seed": 1, "revision": "bbb", "run": "y"}])
    assert len(read_rows(table)) == 1


def test_one_recorder_per_table(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl.gz"
    with table_lock(table):
        with pytest.raises(TableError, match="another recorder"):
            with table_lock(table):
                pass
    with table_lock(table):  # released: free again
        pass


def _row(label: str, seed: int, val9: float, test: float) -> dict:
    epochs = [{"epoch": e, "best_val_dice": val9 if e >= 9 else 0.0, "val_dice": 0.0} for e in range(1, 28)]
    epochs[-1]["test_dice"] = test
    return {"kind": "sampled", "label": label, "seed": seed, "run": f"{label}/{seed}", "epochs": epochs}


def test_summary_seed_noise_on_hand_made_rows() -> None:
    rows = [_row("a", 0, 0.5, 0.6), _row("a", 1, 0.7, 0.6), _row("b", 0, 0.4, 0.1), _row("b", 1, 0.4, 0.3)]
    s = summary(rows)
    sd = s["kinds"]["sampled"]
    # a: sd(0.5, 0.7) = 0.1414 at epoch 9, 0 on test; b: 0 at epoch 9, sd(0.1, 0.3) = 0.1414 on test
    assert sd["sd_val"]["all"] == pytest.approx([0.0, 2**0.5 / 10])
    assert sd["sd_test"]["pooled"] == pytest.approx(0.1)  # sqrt((0.02 + 0) / 2)
    assert s["top_epoch"] == 27 and s["rows"] == 4


def test_cli_help_and_bad_table_name(tmp_path: Path, capsys) -> None:
    from plsearch.cli.table import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--max-cpu-hours" in capsys.readouterr().out
    space = tmp_path / "s.yaml"
    import yaml

    space.write_text(yaml.safe_dump(SPACE))
    assert main(["--space", str(space), "--table", str(tmp_path / "t.json"), "--plan"]) == 2
    assert "must end in .jsonl.gz" in capsys.readouterr().err


def test_a_wave_stops_before_rows_that_wait_on_a_rate(space) -> None:
    from plsearch.studies.table import wave

    plan = make_plan(space, sampled=2, seeds=2, epochs=2, family=False, nested=True)
    first = wave(plan, [])
    # the presets' rate runs and seed 0 of the sampled configs; the nested set waits on PL-Net-dagger's rate
    assert {w.kind for w in first} == {"rate", "sampled"} and all(w.seed == 0 for w in first)
    rows = [{"kind": "rate", "label": w.label, "seed": 0, "val_dice": 0.5} for w in first if w.kind == "rate"]
    rows += [{"kind": "sampled", "label": w.label, "seed": 0} for w in first if w.kind == "sampled"]
    second = wave(plan, rows)
    assert second[0].kind == "nested" and second[0].seed == 0  # unlocked rows come before later seeds
