"""Adam over one flat buffer: the same update as ``torch.optim.Adam``, in a handful of ops per step.

PL-Net's weights are many small tensors (220 in PL-Net-dagger). Even fused, ``torch.optim.Adam``
on the CPU spends most of its step on per-tensor work: a Python loop over the parameters, a
step-counter ``add_`` per tensor and a host read of each counter for the kernel, about 1,500 ops
per step, around a tenth of a small network's train step. ``FlatAdam`` keeps the moments in two
flat buffers, gathers parameters and gradients into flat buffers with one ``_foreach_copy_`` each,
runs one fused Adam kernel over them and scatters the parameters back. Adam is elementwise, so the
update is the per-tensor one; ``tests/test_flatadam.py`` holds it equal to ``torch.optim.Adam``.

Gathering the parameters every step (rather than pointing them into the flat buffer) keeps it
correct when they change outside the optimizer (a resumed checkpoint loaded after it was made).
A step where some parameter has no gradient (a stage not yet trained under the progressive
schedule) falls back to the per-tensor update on views of the same buffers, as Adam skips such
parameters; from then on the step counters differ and every step takes that path.
``state_dict()`` has ``torch.optim.Adam``'s layout, so checkpoints load into either.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch.optim.adam import adam as adam_functional

__all__ = ["FlatAdam"]


class FlatAdam(torch.optim.Optimizer):
    """Adam (L2 ``weight_decay`` as ``torch.optim.Adam``) for parameters of one device and dtype."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("FlatAdam got an empty parameter list")
        if len({(p.device, p.dtype) for p in params}) != 1:
            raise ValueError("FlatAdam needs parameters of one device and dtype; use torch.optim.Adam")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        if len(self.param_groups) != 1:
            raise ValueError("FlatAdam takes one parameter group")
        self._build()

    def _build(self) -> None:
        """Flat buffers and their per-parameter views; fresh state, or the loaded state copied in."""
        params = self.param_groups[0]["params"]
        like = params[0]
        n = sum(p.numel() for p in params)
        # 0: parameters, 1: gradients, 2: exp_avg, 3: exp_avg_sq
        self._flat = [torch.zeros(n, device=like.device, dtype=like.dtype) for _ in range(4)]
        self._views = [self._split(buf) for buf in self._flat]
        loaded = [self.state.get(p) or None for p in params]
        steps = {float(s["step"]) for s in loaded if s}
        self._uniform = not any(loaded) or (all(loaded) and len(steps) == 1)
        self._step = torch.tensor(steps.pop() if self._uniform and steps else 0.0, device=like.device)
        for p, s, m, v in zip(params, loaded, self._views[2], self._views[3]):
            if s:
                m.copy_(s["exp_avg"])
                v.copy_(s["exp_avg_sq"])
            step = self._step if self._uniform else torch.tensor(float(s["step"]) if s else 0.0, device=like.device)
            self.state[p] = {"step": step, "exp_avg": m, "exp_avg_sq": v}

    def _split(self, buf: torch.Tensor) -> list[torch.Tensor]:
        params = self.param_groups[0]["params"]
        return [v.view_as(p) for v, p in zip(buf.split([p.numel() for p in params]), params)]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = group["params"]
        grads = [p.grad for p in params]
        beta1, beta2 = group["betas"]
        hyper = dict(lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"])
        if self._uniform and all(g is not None for g in grads):
            pflat, gflat, mflat, vflat = self._flat
            torch._foreach_copy_(self._views[0], params)
            torch._foreach_copy_(self._views[1], grads)  # type: ignore[arg-type]
            self._step.add_(1)
            torch._fused_adam_(
                [pflat], [gflat], [mflat], [vflat], [], [self._step], amsgrad=False, maximize=False, **hyper
            )
            torch._foreach_copy_(params, self._views[0])
            return loss
        self._go_per_tensor()
        idx = [i for i, g in enumerate(grads) if g is not None]
        if idx:
            adam_functional(
                [params[i] for i in idx],
                [grads[i] for i in idx],  # type: ignore[misc]
                [self._views[2][i] for i in idx],
                [self._views[3][i] for i in idx],
                [],
                [self.state[params[i]]["step"] for i in idx],
                fused=True,
                amsgrad=False,
                maximize=False,
                **hyper,
            )
        return loss

    def _go_per_tensor(self) -> None:
        """From here on each parameter counts its own steps (they may differ)."""
        if not self._uniform:
            return
        for p in self.param_groups[0]["params"]:
            self.state[p]["step"] = self._step.clone()
        self._uniform = False

    def state_dict(self) -> dict[str, Any]:
        """Adam's layout with tensors of their own: the state shares one step counter and the flat
        buffers, which a loader (``torch.optim.Adam`` keeps what it is given) must not alias."""
        sd = super().state_dict()
        sd["state"] = {
            k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()} for k, v in sd["state"].items()
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._build()
