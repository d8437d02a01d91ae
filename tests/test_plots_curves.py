"""Learning curves: the PNG, and the figure and note optuna-dashboard reads from the study."""

from __future__ import annotations

import io
import json
import wsgiref.util

import optuna
import pytest

from plsearch.plots.curves import (
    DASHBOARD_ID,
    curves,
    curves_note,
    plot_learning_curves,
    save_to_dashboard,
)

RECORDS = [
    {"number": 0, "state": "COMPLETE", "feasible": True, "val_dice_curve": [0.2, 0.5, 0.7], "duplicate_of": None},
    {"number": 1, "state": "PRUNED", "feasible": None, "val_dice_curve": [0.1], "duplicate_of": None},
    {
        "number": 2,
        "state": "COMPLETE",
        "feasible": False,
        "val_dice_curve": [0.2, 0.2, 0.2],
        "duplicate_of": None,
        "fail_reason": "degenerate: val Dice 0.2000 <= all-foreground 0.2300",
    },
    {"number": 3, "state": "COMPLETE", "feasible": True, "val_dice_curve": [0.2, 0.5, 0.7], "duplicate_of": 0},
    {"number": 4, "state": "COMPLETE", "feasible": False, "val_dice_curve": None, "duplicate_of": None},
]


def test_curves_one_per_trained_trial_with_its_kind():
    assert [(n, k) for n, k, _ in curves(RECORDS)] == [(0, "complete"), (1, "pruned"), (2, "infeasible")]
    note = curves_note(RECORDS, floor=0.23)
    assert "1 pruned, 1 degenerate" in note and "Pruned after epoch: 1: 1" in note


def test_png_is_written(tmp_path):
    path = plot_learning_curves(RECORDS, tmp_path / "curves.png", floor=0.23, rungs=[1, 3])
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _get(app, path: str) -> dict:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    assert status[0].startswith("200"), status
    return json.loads(body)


def test_dashboard_reads_the_figure_and_note_through_its_own_app():
    pytest.importorskip("optuna_dashboard")
    import optuna_dashboard

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    assert "figure" in save_to_dashboard(study, RECORDS, floor=0.23)
    detail = _get(optuna_dashboard.wsgi(storage), f"/api/studies/{study._study_id}")
    figures = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    fig = figures[DASHBOARD_ID]
    assert [d["name"] for d in fig["data"]] == ["trial 0 (complete)", "trial 1 (pruned)", "trial 2 (infeasible)"]
    assert fig["data"][0]["y"] == [0.2, 0.5, 0.7] and fig["layout"]["shapes"][0]["y0"] == 0.23
    assert "Learning curves" in detail["note"]["body"]
    # saving again overwrites the same figure rather than adding one
    save_to_dashboard(study, RECORDS[:1])
    detail = _get(optuna_dashboard.wsgi(storage), f"/api/studies/{study._study_id}")
    assert len(detail["plotly_graph_objects"]) == 1
