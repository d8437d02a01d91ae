"""Search-space files: every shipped space parses, its corners build or are recorded infeasible,
FixedTrial maps to configs, and bad spaces give one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from plsearch.config.schema import ConfigError, RunConfig
from plsearch.search.objective import Objective
from plsearch.search.space import SearchSpaceError, load_space, parse_space

REPO = Path(__file__).resolve().parents[1]
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))


def test_spaces_are_shipped():
    assert {p.stem for p in SPACES} >= {"ipl_epl", "unet_baseline", "tiny"}


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_space_parses_and_corners_build(path):
    from plsearch.graph.wiring import estimate

    space = load_space(path)
    assert space.name == path.stem and space.axes and space.objectives
    assert set(space.distributions()) == {a.path for a in space.axes}
    built = 0
    for params in space.corner_params():
        try:
            cfg = space.build(params)
        except ConfigError:
            continue  # the objective records these as infeasible (tested below)
        assert isinstance(cfg, RunConfig)
        assert estimate(cfg.model, cfg.data.image_size).params > 0
        built += 1
    assert built > 0


def test_fixed_trial_maps_to_config():
    space = load_space(REPO / "search_spaces" / "ipl_epl.yaml")
    params = {
        "model.steps": 3,
        "model.ipl": "stacked",
        "model.stages": 2,
        "model.depth": 5,
        "model.stage_step": 1,
        "model.ocs": 1.25,
        "model.fsc": False,
        "model.bsc": True,
        "model.plan": "bionet",
        "model.block": "convbnrelu",
        "model.up": "convt2_half",
        "train.lr": 0.003,
    }
    sampled = space.sample(optuna.trial.FixedTrial(params))
    assert sampled == params
    cfg = space.build(sampled)
    m = cfg.model
    assert (m.steps, m.ipl, m.stages, m.ocs, m.fsc, m.plan, m.block) == (
        3,
        "stacked",
        2,
        1.25,
        False,
        "bionet",
        "convbnrelu",
    )
    fidelity = dict(space.fixed)
    assert m.base_width == fidelity["model.base_width"] and cfg.data.image_size == fidelity["data.image_size"]
    assert cfg.train.epochs == fidelity["train.epochs"]  # fidelity applied


def test_distributions_match_yaml():
    space = parse_space(
        {
            "model.steps": {"low": 1, "high": 4},
            "model.ocs": {"low": 0.5, "high": 2.0, "step": 0.25},
            "train.lr": {"low": "1e-4", "high": 1.0e-2, "log": True},
            "model.plan": ["table1", "bionet"],
            "model.base_width": 8,
        }
    )
    d = space.distributions()
    assert d["model.steps"] == optuna.distributions.IntDistribution(1, 4)
    assert d["model.ocs"] == optuna.distributions.FloatDistribution(0.5, 2.0, step=0.25)
    assert d["train.lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert d["model.plan"] == optuna.distributions.CategoricalDistribution(["table1", "bionet"])
    assert dict(space.fixed) == {"model.base_width": 8}


def test_invalid_combination_is_recorded_infeasible_not_trained():
    space = load_space(REPO / "search_spaces" / "ipl_epl.yaml")
    bad = {a.path: a.corners()[0] for a in space.axes}
    bad.update({"model.stages": 3, "model.stage_step": 2, "model.depth": 4})
    with pytest.raises(ConfigError):
        space.build(bad)
    study = optuna.create_study(directions=space.directions)
    study.enqueue_trial(bad)
    trial = study.ask()
    outcome = Objective(space)(trial)
    assert outcome.state == "complete" and not outcome.feasible
    assert "invalid config" in outcome.reason and "stage_step" in outcome.reason
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.user_attrs["fail_reason"] == outcome.reason
    assert frozen.system_attrs["constraints:valid"] == 1.0
    study.tell(trial, outcome.values)  # the study accepts it (infeasible, never on the Pareto front)
    assert study.best_trials == []


def test_over_budget_is_infeasible_not_trained():
    space = parse_space(
        {
            "model.ocs": {"low": 1.0, "high": 2.0},
            "model.base_width": 4,
            "fidelity": {"data.image_size": 32, "data.synthetic_count": 8},
            "constraints": {"params": 1000},
        }
    )
    study = optuna.create_study(directions=space.directions)
    trial = study.ask()
    outcome = Objective(space)(trial)
    assert not outcome.feasible and outcome.reason.startswith("over budget: params")
    assert "metrics" not in study._storage.get_trial(trial._trial_id).user_attrs  # never trained


BAD = [
    ("model.steps: {low: 1, high: 4}\nmodel.foo: 3\n", "unknown config path 'model.foo'; valid model. keys"),
    ("model.steps: {low: 1, high: 4}\nbogus: 1\n", "unknown section 'bogus'"),
    ("model.steps: {low: 4, high: 1}\n", "model.steps: inverted range"),
    ("model.steps: {low: 2, high: 2}\n", "model.steps: empty range"),
    ("model.ocs: {low: 0.5, high: 2.0, step: 0.4}\n", "model.ocs: step=0.4 does not divide"),
    ("model.ocs: {low: 0.5, high: 2.0, step: -0.25}\n", "model.ocs: step=-0.25 must be a positive"),
    ("model.steps: {low: 1.5, high: 4}\n", "model.steps is an integer field"),
    ("model.steps: {low: 1, high: 4, log: true, step: 1}\n", "step and log cannot be combined"),
    ("model.steps: {low: 1, high: 4}\nobjectives: [val_dice, flops]\n", "unknown metric 'flops'"),
    (
        "model.steps: {low: 1, high: 4}\nsampler: cmaes\n",
        "sampler='cmaes' is not known; choose one of gp, nsga2, random, tpe",
    ),
    ("model.steps: {low: 1, high: 4}\nsampler: {name: tpe, n_startup: 3}\n", "unknown option(s) n_startup"),
    ("model.steps: {low: 1, high: 9}\n", "model.steps=9 is out of range"),
    ("model.plan: [table1, nope]\n", "model.plan='nope' is not allowed; choose one of"),
    ("model.steps: {low: 1, high: 4}\nconstraints: {flops: 3}\n", "constraints: unknown metric 'flops'"),
    ("model.steps: {low: 1, high: 4}\nfidelity: {train.epochz: 3}\n", "unknown config path 'train.epochz'"),
    ("model.steps: {low: 1, high: 4}\nfidelity: {train.epochs: {low: 1, high: 2}}\n", "must be a fixed value"),
    ("model.plan: []\n", "choices must be a non-empty list"),
    ("fidelity: {train.epochs: 3}\n", "no search axes"),
    ("model.steps: {low: 1, high: 4}\nreferences: [resnet]\n", "references="),
    ("model.steps: {low: 1, high: 4\n", "YAML syntax error"),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_space_errors_name_the_key(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError) as e:
        load_space(path)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg


def test_cli_bad_space_is_one_line_exit_2(tmp_path, capsys):
    from plsearch.cli.search import main

    path = tmp_path / "bad.yaml"
    path.write_text("model.steps: {low: 4, high: 1}\n")
    assert main(["--space", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "inverted range" in err
    assert main(["--space", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_yaml_numbers_without_dot_are_numbers():
    space = parse_space(yaml.safe_load("train.lr: {low: 1e-4, high: 1e-2, log: true}\nconstraints: {macs: 6.0e7}\n"))
    assert space.axes[0].low == 1e-4 and dict(space.constraints) == {"macs": 6.0e7}


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "gp"])
def test_every_sampler_samples_the_space_with_constraints(sampler):
    import warnings

    from plsearch.search.runner import make_sampler

    space = parse_space(
        {
            "model.steps": {"low": 1, "high": 4},
            "model.plan": ["table1", "bionet"],
            "model.ocs": {"low": 0.5, "high": 2.0, "step": 0.25},
            "sampler": sampler,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(directions=space.directions, sampler=make_sampler(space, 0))
        for i in range(4):
            trial = study.ask()
            params = space.sample(trial)
            trial.set_constraint("valid", 0.0 if i % 2 else 1.0)
            study.tell(trial, [0.1 * params["model.steps"], params["model.ocs"] * 1e6])
    assert len(study.trials) == 4


@pytest.mark.parametrize(
    "error,state,feasible,reason",
    [
        ("nan", "complete", False, "non-finite loss"),
        ("oom", "fail", True, "out of memory"),
    ],
)
def test_nan_and_oom_end_the_trial_with_a_reason(monkeypatch, error, state, feasible, reason):
    import plsearch.search.objective as objective
    from plsearch.train.fit import NonFiniteLossError

    def boom(*args, **kwargs):
        if error == "nan":
            raise NonFiniteLossError("training loss is nan in epoch 1; lower train.lr or check the data")
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(objective, "train_and_score", boom)
    space = load_space(REPO / "search_spaces" / "tiny.yaml")
    study = optuna.create_study(directions=space.directions)
    trial = study.ask()
    outcome = Objective(space)(trial)
    assert (outcome.state, outcome.feasible) == (state, feasible)
    assert study._storage.get_trial(trial._trial_id).user_attrs["fail_reason"].startswith(reason)
