"""FlatAdam: the update of torch.optim.Adam, its state layout, and the cases where it must not cut corners."""

from __future__ import annotations

import pytest
import torch

from plsearch.config.schema import TrainConfig
from plsearch.train.fit import make_optimizer
from plsearch.train.flatadam import FlatAdam

SHAPES = [(4, 3, 3, 3), (4,), (7,), (2, 4, 3, 3), (1,), (5, 5)]


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in SHAPES]


def _clone(ps: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in ps]


def _grads(ps: list[torch.Tensor], step: int, skip: tuple[int, ...] = ()) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(100 + step)
    return [None if i in skip else torch.randn(p.shape, generator=g) for i, p in enumerate(ps)]


def _set(ps: list[torch.Tensor], grads: list[torch.Tensor | None]) -> None:
    for p, g in zip(ps, grads):
        p.grad = None if g is None else g.clone()


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_same_update_as_torch_adam(weight_decay):
    ref, flat = _params(), None
    flat = _clone(ref)
    o_ref = torch.optim.Adam(ref, lr=1e-2, weight_decay=weight_decay)
    o_flat = FlatAdam(flat, lr=1e-2, weight_decay=weight_decay)
    for step in range(12):
        grads = _grads(ref, step)
        _set(ref, grads), _set(flat, grads)
        o_ref.step(), o_flat.step()
    _close(ref, flat)
    assert flat[0].grad is not None  # gradients are read, not consumed
    before = [p.detach().clone() for p in flat]
    o_flat.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in flat)
    _close(before, [p.detach() for p in flat])


def test_parameters_without_gradients_are_skipped_like_adam():
    """A stage not trained yet (progressive schedule): no gradient, no update, no step counted."""
    ref = _params(1)
    flat = _clone(ref)
    o_ref, o_flat = torch.optim.Adam(ref, lr=1e-2), FlatAdam(flat, lr=1e-2)
    for step in range(8):
        grads = _grads(ref, step, skip=(1, 3) if step < 4 else ())
        _set(ref, grads), _set(flat, grads)
        o_ref.step(), o_flat.step()
        if step < 4:
            _close([ref[1], ref[3]], [p.detach() for p in _params(1)[1:4:2]])  # untouched while gradient-less
    _close(ref, flat)
    steps = {float(o_flat.state[p]["step"]) for p in flat}
    assert steps == {8.0, 4.0}


def test_parameters_changed_outside_are_read_each_step():
    """A checkpoint loaded into the model after the optimizer was made (resume) is what gets updated."""
    ref, flat = _params(2), _params(2)
    o_ref, o_flat = torch.optim.Adam(ref, lr=1e-2), FlatAdam(flat, lr=1e-2)
    new = _params(3)
    with torch.no_grad():
        for a, b, n in zip(ref, flat, new):
            a.copy_(n), b.copy_(n)
    grads = _grads(ref, 0)
    _set(ref, grads), _set(flat, grads)
    o_ref.step(), o_flat.step()
    _close(ref, flat)


def test_state_dict_moves_between_flat_and_torch_adam():
    ref = _params(4)
    flat = _clone(ref)
    o_ref, o_flat = torch.optim.Adam(ref, lr=1e-2), FlatAdam(flat, lr=1e-2)
    for step in range(3):
        grads = _grads(ref, step)
        _set(ref, grads), _set(flat, grads)
        o_ref.step(), o_flat.step()
    # swap: each continues from the other's saved state
    a, b = _clone(ref), _clone(flat)
    o_a, o_b = FlatAdam(a, lr=1e-2), torch.optim.Adam(b, lr=1e-2)
    o_a.load_state_dict(o_ref.state_dict())
    o_b.load_state_dict(o_flat.state_dict())
    assert float(o_a.state[a[0]]["step"]) == 3.0
    for step in range(3, 6):
        grads = _grads(ref, step)
        for ps, o in ((ref, o_ref), (a, o_a), (b, o_b)):
            _set(ps, grads)
            o.step()
    _close(ref, a)
    _close(ref, b)


def test_learning_rate_change_is_applied():
    ref = _params(5)
    flat = _clone(ref)
    o_ref, o_flat = torch.optim.Adam(ref, lr=1e-2), FlatAdam(flat, lr=1e-2)
    for o in (o_ref, o_flat):
        o.param_groups[0]["lr"] = 0.5
    grads = _grads(ref, 0)
    _set(ref, grads), _set(flat, grads)
    o_ref.step(), o_flat.step()
    _close(ref, flat)


def test_bad_parameter_lists_are_refused():
    with pytest.raises(ValueError, match="empty"):
        FlatAdam([])
    with pytest.raises(ValueError, match="one device and dtype"):
        FlatAdam([torch.zeros(2, requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)])


def test_training_uses_flat_adam_on_cpu():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert isinstance(make_optimizer(model, TrainConfig(lr=1e-3)), FlatAdam)
