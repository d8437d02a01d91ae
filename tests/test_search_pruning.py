"""The multi-objective dominance pruner, on synthetic curves and FrozenTrials (no training)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from plsearch.search.pruning import Curve, DominancePruner, curves_from_trials, make_epoch_callback
from plsearch.search.space import parse_space


def _trial(number_params: int, curve: list[float], state=TrialState.COMPLETE, feasible=True):
    t = create_trial(
        state=state,
        values=[max(curve), float(number_params)] if state == TrialState.COMPLETE else None,
        params={"model.steps": 2},
        distributions={"model.steps": IntDistribution(1, 4)},
        user_attrs={
            "val_dice_curve": curve,
            "profile": {"params": number_params, "macs": 10 * number_params},
            "feasible": feasible,
        },
    )
    return t


FINISHED = [
    _trial(1000, [0.3, 0.5, 0.6, 0.7]),
    _trial(2000, [0.4, 0.6, 0.7, 0.8]),
    _trial(500, [0.2, 0.3, 0.35, 0.4]),
    _trial(800, [0.5, 0.9, 0.95, 0.97], state=TrialState.PRUNED),
    _trial(100, [0.9, 0.99, 0.99, 0.99], feasible=False),  # infeasible: never a comparator
]


def test_curves_from_trials_keeps_finished_feasible():
    curves = curves_from_trials(FINISHED, ("params",))
    assert [c.size for c in curves] == [(1000.0,), (2000.0,), (500.0,), (800.0,)]
    assert [c.complete for c in curves] == [True, True, True, False]


def test_prunes_a_clearly_bad_trial_and_keeps_a_good_one():
    pruner = DominancePruner(n_startup_trials=3, n_warmup_epochs=1)
    curves = curves_from_trials(FINISHED, ("params",))
    bad = pruner.dominated_by(epoch=2, dice=0.1, size=1500, others=curves)
    assert bad is not None and bad.dice[1] == 0.9  # the best no-larger trial (pruned trial 800 counts)
    assert pruner.dominated_by(epoch=2, dice=0.95, size=1500, others=curves) is None  # best at its size
    # a small trial is only compared with trials no larger than itself
    assert pruner.dominated_by(epoch=2, dice=0.31, size=500, others=curves) is None
    assert pruner.dominated_by(epoch=2, dice=0.29, size=500, others=curves) is not None


def test_warmup_startup_and_margin():
    curves = curves_from_trials(FINISHED, ("params",))
    assert DominancePruner(n_warmup_epochs=2).dominated_by(2, 0.0, 5000, curves) is None
    assert DominancePruner(n_startup_trials=4).dominated_by(3, 0.0, 5000, curves) is None  # 3 complete < 4
    assert DominancePruner(min_delta=0.1).dominated_by(3, 0.9, 5000, curves) is None  # 0.95 - 0.9 < 0.1
    assert DominancePruner(min_delta=0.1).dominated_by(3, 0.8, 5000, curves) is not None
    # an epoch the others never reached: nothing to compare with
    assert DominancePruner().dominated_by(9, 0.0, 5000, curves) is None


def test_multi_size_dominance_needs_every_size_no_larger():
    others = [Curve(0, (100.0, 5000.0), (0.9, 0.9), True)] * 3
    pruner = DominancePruner(n_startup_trials=1)
    assert pruner.dominated_by(2, 0.5, (200.0, 6000.0), others) is not None
    assert pruner.dominated_by(2, 0.5, (200.0, 4000.0), others) is None  # fewer MACs: not dominated


def test_epoch_callback_prunes_through_optuna_in_a_multi_objective_study():
    space = parse_space(
        {
            "model.steps": {"low": 1, "high": 4},
            "objectives": ["val_dice", "params"],
            "pruning": {"n_startup_trials": 2, "n_warmup_epochs": 1},
        }
    )
    study = optuna.create_study(directions=space.directions)
    study.add_trials(FINISHED)
    trial = study.ask()
    cb = make_epoch_callback(trial, space, {"params": 1500, "macs": 15000}, epochs=4)
    cb(1, {"val_dice": 0.0})  # warm-up epoch: kept
    with pytest.raises(optuna.TrialPruned, match="trial 3"):
        cb(2, {"val_dice": 0.1})
    assert study.get_trials(deepcopy=False)[trial.number].user_attrs["val_dice_curve"] == [0.0, 0.1]
    good = study.ask()
    cb = make_epoch_callback(good, space, {"params": 1500, "macs": 15000}, epochs=4)
    for e, d in enumerate([0.6, 0.95, 0.97, 0.98], start=1):
        cb(e, {"val_dice": d})  # never dominated: no exception


def test_last_epoch_is_never_pruned():
    space = parse_space({"model.steps": {"low": 1, "high": 4}, "objectives": ["val_dice", "params"]})
    study = optuna.create_study(directions=space.directions)
    study.add_trials(FINISHED)
    trial = study.ask()
    cb = make_epoch_callback(trial, space, {"params": 1500, "macs": 15000}, epochs=2)
    cb(1, {"val_dice": 0.0})  # the warm-up epoch
    cb(2, {"val_dice": 0.0})  # dominated, but training is over: its values are worth recording (no TrialPruned)
    assert study.get_trials(deepcopy=False)[trial.number].user_attrs["val_dice_curve"] == [0.0, 0.0]
    mid = make_epoch_callback(study.ask(), space, {"params": 1500, "macs": 15000}, epochs=3)
    mid(1, {"val_dice": 0.0})
    with pytest.raises(optuna.TrialPruned):  # the same curve before the last epoch is pruned
        mid(2, {"val_dice": 0.0})


def test_single_objective_uses_optunas_pruner():
    from plsearch.search.pruning import study_pruner

    space = parse_space(
        {
            "model.steps": {"low": 1, "high": 4},
            "objectives": ["val_dice"],
            "pruning": {"n_startup_trials": 1, "n_warmup_epochs": 0},
        }
    )
    assert isinstance(study_pruner(space), optuna.pruners.MedianPruner)
    study = optuna.create_study(direction="maximize", pruner=study_pruner(space))
    for dice in (0.8, 0.9):
        t = study.ask()
        t.report(dice, 1)
        study.tell(t, dice)
    cb = make_epoch_callback(study.ask(), space, {"params": 1}, epochs=3)
    with pytest.raises(optuna.TrialPruned, match="median"):
        cb(1, {"val_dice": 0.1, "val_iou": 0.05})


def test_a_plugin_pruner_takes_options_the_parser_never_heard_of():
    from dataclasses import dataclass, field

    from plsearch.search.pruning import pruner_name
    from plsearch.search.registries import PRUNERS, pruner_options_of, register_pruner
    from plsearch.search.space import SearchSpaceError

    @register_pruner("h_patience")
    class Patience:
        @dataclass(frozen=True)
        class Options:
            patience: int = field(default=2, metadata={"min": 1})
            margin: float = 0.0

        def __init__(self, space) -> None:
            self.options = pruner_options_of(type(self), space)

        def check(self, state) -> str | None:
            return None

    base = {"model.steps": {"low": 1, "high": 4}, "objectives": ["val_dice", "params"]}
    try:
        space = parse_space({**base, "pruning": {"name": "h_patience", "patience": 4, "margin": "1e-2"}})
        assert pruner_name(space) == "h_patience" and space.pruning.patience == 4
        assert Patience(space).options == Patience.Options(4, 0.01)
        assert parse_space({**base, "pruning": {"name": "h_patience"}}).pruning.options == Patience.Options()
        for bad, msg in (
            ({"patience": 0}, r"pruning.patience=0 must be an integer >= 1"),
            (
                {"n_warmup_epochs": 1},
                r"unknown option\(s\) n_warmup_epochs for pruner h_patience; allowed: "
                "enabled, name, patience, margin",
            ),
        ):
            with pytest.raises(SearchSpaceError, match=msg):
                parse_space({**base, "pruning": {"name": "h_patience", **bad}})
        # the built-ins' options are their own too: asha takes no min_delta, dominance no eta
        with pytest.raises(SearchSpaceError, match=r"min_delta for pruner asha; allowed: enabled, name, min_epochs"):
            parse_space({**base, "pruning": {"name": "asha", "min_delta": 0.1}})
        with pytest.raises(SearchSpaceError, match="eta for pruner dominance"):
            parse_space({**base, "pruning": {"eta": 3}})
    finally:
        PRUNERS.unregister("h_patience")
