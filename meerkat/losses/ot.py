"""AVOpT: optimal transport between image-patch and audio-token distributions.

Cost is cosine distance between projected tokens, marginals are uniform, and the plan is solved by
POT's batched solvers on the tensors' own device and then held constant, so the gradient of
sum(T * C) moves the projections along the plan without back-propagating through the solver.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ot.batch import solve_batch


def cosine_cost(image_tokens: torch.Tensor, audio_tokens: torch.Tensor) -> torch.Tensor:
    """(B, Ni, D), (B, Na, D) → (B, Ni, Na) cosine distance in [0, 2]."""
    image = F.normalize(image_tokens.float(), dim=-1)
    audio = F.normalize(audio_tokens.float(), dim=-1)
    return 1.0 - image @ audio.transpose(1, 2)  # (B, Ni, Na)


def transport_plan(cost: torch.Tensor, solver: str = "proximal", beta: float = 0.5, reg: float = 0.05,
                   iters: int = 30) -> torch.Tensor:
    """Batched OT plan (B, Ni, Na) with uniform marginals, no gradient.

    "proximal" is the IPOT-style proximal point method of the official code (step `beta`, one inner
    Sinkhorn step per iteration); "sinkhorn" is entropic OT with regularisation `reg` in log domain.
    """
    if solver == "proximal":
        kwargs = dict(reg=None, method="proximal", inner_reg=beta, inner_iter=1)
    elif solver == "sinkhorn":
        kwargs = dict(reg=reg, method="log_sinkhorn")
    else:
        raise ValueError(f"unknown OT solver {solver!r}; use 'proximal' or 'sinkhorn'")
    with torch.no_grad():
        # tol=0 runs exactly `iters` iterations, so the plan does not depend on a convergence test.
        return solve_batch(cost.detach(), max_iter=iters, tol=0.0, grad="detach", **kwargs).plan


def avopt_loss(image_tokens: torch.Tensor, audio_tokens: torch.Tensor, **solver_kwargs) -> torch.Tensor:
    """Mean over the batch of sum(T * C); (B, Ni, D), (B, Na, D) → scalar."""
    cost = cosine_cost(image_tokens, audio_tokens)  # (B, Ni, Na)
    plan = transport_plan(cost, **solver_kwargs)  # (B, Ni, Na), constant
    return (plan * cost).sum(dim=(1, 2)).mean()
