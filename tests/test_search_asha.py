"""Multi-objective successive halving: ranking, promotion on hand-built curves, several workers on one journal."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from plsearch.search.asha import (
    RUNG_ATTR,
    RungResult,
    crowding,
    decide,
    n_promoted,
    nondominated_fronts,
    ranking,
    rung_epochs,
)
from plsearch.search.parsing import MetricSpec
from plsearch.search.pruning import AshaPruner, EpochState, get_pruner, list_pruners


def _space(eta=3, min_epochs=1, objectives=("val_dice", "params")):
    dirs = {"val_dice": "maximize"}
    return SimpleNamespace(
        pruning=SimpleNamespace(
            enabled=True,
            name="asha",
            min_epochs=min_epochs,
            eta=eta,
            n_startup_trials=0,
            n_warmup_epochs=0,
            min_delta=0.0,
        ),
        objectives=[MetricSpec(o, dirs.get(o, "minimize")) for o in objectives],
    )


def test_rungs_at_min_epochs_times_powers_of_eta_below_the_last_epoch():
    assert rung_epochs(1, 3, 10) == (1, 3)  # 9 of 10 is no rung: the top rung is the full run
    assert rung_epochs(1, 3, 9) == (1, 3)
    assert rung_epochs(2, 2, 9) == (2, 4)
    assert rung_epochs(3, 3, 10) == (3,)
    assert rung_epochs(5, 3, 5) == ()
    with pytest.raises(ValueError):
        rung_epochs(1, 1, 10)


def test_nondominated_fronts_and_crowding():
    pts = [(1, 1), (2, 2), (0, 3), (3, 0), (2, 3)]  # minimised
    assert nondominated_fronts(pts) == [[0, 2, 3], [1], [4]]
    dist = crowding(pts, [0, 2, 3])
    assert dist[2] == dist[3] == math.inf and dist[0] == pytest.approx(2 * (3 / 3))
    assert n_promoted(2, 3) == 2 and n_promoted(3, 3) == 1 and n_promoted(9, 3) == 3 and n_promoted(10, 3) == 3


def test_top_third_goes_on_and_the_bottom_stops_with_equal_sizes():
    dice = [0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6]
    results = [RungResult(i, d, (1000.0,)) for i, d in enumerate(dice)]
    promoted = {r.number for r in results if decide(r, results, eta=3).promoted}
    assert promoted == {1, 4, 6}  # Dice 0.9, 0.8, 0.7
    assert ranking(results)[:3] == [1, 4, 6]


def test_fewer_than_eta_trials_at_a_rung_all_go_on():
    first = RungResult(0, 0.9, (1000.0,))
    assert decide(RungResult(1, 0.1, (1000.0,)), [first], eta=3).promoted  # 2 < eta: no ranking yet
    assert not decide(RungResult(2, 0.1, (1000.0,)), [first, RungResult(1, 0.5, (1000.0,))], eta=3).promoted


def test_size_counts_a_small_net_goes_on_where_a_large_one_with_the_same_dice_stops():
    # three large nets; a small one with mediocre Dice is non-dominated, a large one with that Dice is not
    peers = [
        RungResult(0, 0.8, (4000.0,)),
        RungResult(1, 0.7, (4000.0,)),
        RungResult(2, 0.6, (4000.0,)),
        RungResult(3, 0.9, (5000.0,)),
        RungResult(4, 0.75, (3000.0,)),
    ]
    small, large = RungResult(10, 0.5, (100.0,)), RungResult(11, 0.5, (4000.0,))
    assert decide(small, peers, eta=3).promoted
    assert not decide(large, peers, eta=3).promoted


def test_trivial_dice_ranks_last_even_when_small():
    peers = [
        RungResult(0, 0.6, (4000.0,)),
        RungResult(1, 0.7, (5000.0,)),
        RungResult(3, 0.5, (4500.0,)),
        RungResult(4, 0.4, (6000.0,)),
    ]
    tiny_trivial = RungResult(2, 0.22, (10.0,))
    assert decide(tiny_trivial, peers, eta=2).promoted  # without a floor: non-dominated, an extreme (smallest)
    d = decide(tiny_trivial, peers, eta=2, floor=0.23)
    assert not d.promoted and d.rank == 4


def _finished(number_params: int, rung_dice: dict[int, float], state=TrialState.COMPLETE, **attrs):
    return create_trial(
        state=state,
        values=[max(rung_dice.values()), float(number_params)] if state == TrialState.COMPLETE else None,
        params={"model.steps": 2},
        distributions={"model.steps": IntDistribution(1, 4)},
        user_attrs={
            "profile": {"params": number_params},
            "feasible": True,
            RUNG_ATTR: {str(e): {"val_dice": d} for e, d in rung_dice.items()},
            **attrs,
        },
    )


def test_pruner_reads_peers_from_storage_and_records_its_decision():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for d in [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
        state = TrialState.PRUNED if d < 0.5 else TrialState.COMPLETE
        study.add_trial(_finished(1000, {1: d, 3: d + 0.05}, state=state))
    study.add_trial(_finished(1000, {1: 0.99}, state=TrialState.FAIL))  # killed and re-queued: not a peer
    study.add_trial(_finished(1000, {1: 0.99}, duplicate_of=3))  # a duplicate: not a peer
    pruner = AshaPruner(_space())
    for dice, expect in ((0.65, "stop"), (0.85, "go")):
        trial = study.ask()
        trial.set_user_attr("profile", {"params": 1000})
        reason = pruner.check(EpochState(trial, 1, 9, (dice,), (1000.0,), ("params",)))
        rec = study._storage.get_trial(trial._trial_id).user_attrs[RUNG_ATTR]["1"]
        assert rec["val_dice"] == dice and rec["promoted"] == (expect == "go")
        assert (reason is None) == (expect == "go")
        assert 8 <= len(rec["peers"]) <= 9 and 8 not in rec["peers"] and 9 not in rec["peers"]
        assert rec["keep"] == 3
        study.tell(
            trial, state=TrialState.PRUNED if reason else TrialState.COMPLETE, values=None if reason else [dice, 1000.0]
        )
    # an epoch that is not a rung: no decision, nothing written
    trial = study.ask()
    assert pruner.check(EpochState(trial, 2, 9, (0.0, 0.0), (1000.0,), ("params",))) is None
    assert RUNG_ATTR not in study._storage.get_trial(trial._trial_id).user_attrs


def test_a_trial_that_passed_a_rung_stays_a_peer_there_after_it_ends_infeasible():
    # Trial 0 passed rung 1 with the best Dice, then ended degenerate (feasible False) at the end of its
    # run; trial 1 ended with a non-finite loss. Their rung-1 results were real: later decisions at rung 1
    # must still count them, or the rung's ranking changes with the fate of trials that already passed it.
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), directions=["maximize", "minimize"])
    study.add_trial(_finished(1000, {1: 0.9, 3: 0.2}, feasible=False, degenerate=True))
    study.add_trial(_finished(1000, {1: 0.8}, feasible=False, fail_reason="non-finite loss"))
    for d in (0.5, 0.4):
        study.add_trial(_finished(1000, {1: d, 3: d}))
    study.add_trial(_finished(1000, {1: 0.99}, state=TrialState.FAIL))  # re-queued: its parameters run again
    study.add_trial(_finished(1000, {1: 0.99}, duplicate_of=2))  # a duplicate: not a peer
    pruner = AshaPruner(_space())
    trial = study.ask()
    trial.set_user_attr("profile", {"params": 1000})
    # 5 at the rung (0.9, 0.8, 0.7, 0.5, 0.4): the top 1 goes on, so 0.7 stops (without trials 0 and 1 it
    # would be the best of three and go on)
    reason = pruner.check(EpochState(trial, 1, 9, (0.7,), (1000.0,), ("params",)))
    rec = study._storage.get_trial(trial._trial_id).user_attrs[RUNG_ATTR]["1"]
    assert rec["peers"] == [0, 1, 2, 3]
    assert (rec["rank"], rec["keep"], rec["promoted"]) == (2, 1, False)
    assert reason is not None and "rank 3 of 5" in reason


def test_pruners_are_registered_by_name():
    assert {"asha", "dominance", "median"} <= set(list_pruners())
    assert get_pruner("asha") is AshaPruner
    with pytest.raises(ValueError, match="choose one of"):
        get_pruner("nope")


WORKER = textwrap.dedent("""
    import random, sys, time
    from types import SimpleNamespace
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState
    from plsearch.search.parsing import MetricSpec
    from plsearch.search.pruning import AshaPruner, EpochState

    path, total, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="asha", storage=JournalStorage(JournalFileBackend(path)))
    space = SimpleNamespace(pruning=SimpleNamespace(min_epochs=1, eta=3),
                            objectives=[MetricSpec("val_dice", "maximize"), MetricSpec("params", "minimize")])
    pruner, rng = AshaPruner(space), random.Random(seed)
    while len(study.get_trials(deepcopy=False)) < total:
        trial = study.ask()
        q, size = rng.random(), float(rng.choice([1000, 2000, 3000]))
        trial.set_user_attr("profile", {"params": size})
        curve = []
        for epoch in range(1, 10):
            curve.append(round(q * (1 - 0.5 ** epoch), 6))
            time.sleep(rng.random() * 0.005)
            if pruner.check(EpochState(trial, epoch, 9, tuple(curve), (size,), ("params",))):
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, [curve[-1], size])
""")


def test_promotion_stays_consistent_with_three_workers_on_one_journal(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "study.journal")
    storage = JournalStorage(JournalFileBackend(path))
    optuna.create_study(study_name="asha", storage=storage, directions=["maximize", "minimize"])
    (tmp_path / "worker.py").write_text(WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), path, "24", str(seed)]) for seed in range(3)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    trials = optuna.load_study(study_name="asha", storage=storage).get_trials()
    assert len(trials) >= 24 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    rungs = {t.number: t.user_attrs.get(RUNG_ATTR, {}) for t in trials}
    size = {t.number: t.user_attrs["profile"]["params"] for t in trials}
    for t in trials:
        for epoch, rec in rungs[t.number].items():
            # the decision recorded equals the rule applied to the peers it recorded, at their recorded values
            peers = [RungResult(p, rungs[p][epoch]["val_dice"], (size[p],)) for p in rec["peers"]]
            me = RungResult(t.number, rec["val_dice"], (size[t.number],))
            assert decide(me, peers, eta=3).promoted == rec["promoted"], (t.number, epoch)
        decided = [int(e) for e, r in rungs[t.number].items()]
        last = max(decided)
        if t.state == TrialState.PRUNED:
            assert not rungs[t.number][str(last)]["promoted"]
        assert all(rungs[t.number][str(e)]["promoted"] for e in decided if e != last or t.state == TrialState.COMPLETE)
    # store-then-load: of two trials at the same rung, at least one saw the other
    for epoch in ("1", "3"):
        at = [n for n in rungs if epoch in rungs[n]]
        for a in at:
            for b in at:
                if a < b:
                    assert b in rungs[a][epoch]["peers"] or a in rungs[b][epoch]["peers"], (epoch, a, b)
    assert json.dumps(rungs)  # JSON-safe user attrs (journal, RDB and SQLite all store them)


def test_space_names_its_pruner_and_states_budgets_relative_to_a_preset():
    from plsearch.search.budgets import resolve_budget
    from plsearch.search.space import SearchSpaceError, parse_space

    base = {"model.steps": {"low": 1, "high": 2}, "fidelity": {"model.base_width": 4, "data.image_size": 64}}
    space = parse_space(
        {
            **base,
            "pruning": {"name": "asha", "min_epochs": 2, "eta": 4},
            "constraints": {"macs": {"at_most": "plnet"}, "params": {"at_most": "unet", "times": 0.5}},
        }
    )
    assert (space.pruning.name, space.pruning.min_epochs, space.pruning.eta) == ("asha", 2, 4)
    macs = dict(space.constraints)["macs"]
    assert macs == resolve_budget("macs", {"at_most": "plnet"}, {"model.base_width": 4, "data.image_size": 64})[0]
    assert 8.0e7 < macs < 8.5e7  # PL-Net at width 4, 64 px: 82.5 M
    assert parse_space(base).pruning.name is None  # no name: today's choice (dominance / median)
    assert parse_space(base).trivial_margin == 0.05 and parse_space({**base, "trivial_margin": 0}).trivial_margin == 0.0
    for bad, msg in (
        ({"pruning": {"name": "x"}}, "choose one of"),
        ({"pruning": {"name": "median"}}, "one objective"),
        ({"pruning": {"name": "asha", "eta": 1}}, "eta"),
        ({"constraints": {"macs": {"at_most": "nope"}}}, "not a preset"),
        ({"trivial_margin": 1.5}, "trivial_margin"),
    ):
        with pytest.raises(SearchSpaceError, match=msg):
            parse_space({**base, **bad})


SLOW_ASHA = '''
import time
from plsearch.search.pruning import AshaPruner
from plsearch.search.registries import register_pruner

@register_pruner("asha_slow")
class SlowAsha(AshaPruner):
    """asha that lingers after each epoch, so the test can kill a trial that recorded a rung."""

    def check(self, state):
        reason = super().check(state)
        time.sleep(1.5)
        return reason
'''

ASHA_SPACE = """imports: [slow_asha.py]
n_trials: 4
seed: 0
sampler: {name: random}
objectives: [val_dice, params]
pruning: {name: asha_slow, min_epochs: 1, eta: 3}
references: false
model.steps: {low: 1, high: 2}
model.ocs: {low: 0.5, high: 1.0, step: 0.25}
model.depth: 3
model.stem: 1
fidelity: {model.base_width: 4, data.image_size: 32, data.synthetic_count: 16, train.epochs: 4,
           train.batch_size: 8, train.max_steps_per_epoch: 1, train.eval_batch_size: 16, train.augment: false,
           train.lr: 0.003, train.patience: 0}
"""


@pytest.mark.slow
def test_a_search_with_asha_resumes_after_a_kill(tmp_path):
    import os
    import signal
    import time

    from plsearch.cli.search import main

    (tmp_path / "slow_asha.py").write_text(SLOW_ASHA)
    (tmp_path / "asha.yaml").write_text(ASHA_SPACE)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plsearch.search",
            "--space",
            str(tmp_path / "asha.yaml"),
            "--out",
            str(out),
            "--no-plots",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    storage = f"sqlite:///{out / 'study.db'}"
    killed, deadline = None, time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            trials = optuna.load_study(study_name="asha", storage=storage).get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001  (the study may not exist yet)
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING and RUNG_ATTR in t.user_attrs]
        if running:
            os.kill(proc.pid, signal.SIGKILL)
            killed = running[0]
    proc.wait(timeout=30)
    assert killed is not None, "no trial was caught between its first rung and its end"
    assert main(["--space", str(tmp_path / "asha.yaml"), "--out", str(out), "--no-plots"]) == 0
    trials = optuna.load_study(study_name="asha", storage=storage).get_trials()
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["requeued"]
    rerun = [t for t in trials if t.user_attrs.get("requeued_from") == killed.number]
    assert len(rerun) == 1 and rerun[0].params == killed.params and rerun[0].state.is_finished()
    finished = [
        t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not t.user_attrs.get("requeued")
    ]
    assert len(finished) == 4
    for t in finished:
        if "metrics" in t.user_attrs or t.state == TrialState.PRUNED:
            assert "1" in t.user_attrs[RUNG_ATTR]
            assert killed.number not in t.user_attrs[RUNG_ATTR]["1"]["peers"]  # a killed trial is nobody's peer
