"""AVOpT: optimal transport between image-patch and audio-token distributions.

Cost is cosine distance between projected tokens, marginals are uniform, and the plan is solved by
POT's batched solvers on the tensors' own device and then held constant, so the gradient of
sum(T * C) moves the projections along the plan without back-propagating through the solver.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import torch

# POT imports every array library it finds; JAX, where installed, reserves most of the GPU at that import
# (seen on an H200: an 85 GiB allocation beside a training run). Meerkat passes POT torch tensors only.
for _backend in ("JAX", "TENSORFLOW", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")
from ot.batch import solve_batch  # noqa: E402
from packaging.version import Version

from meerkat.losses.similarity import cosine_similarity  # noqa: E402

# POT <= 0.9.7.post1 builds the proximal kernel with the wrong sign of log T (PythonOT/POT#842, fixed by
# #844 after that release): its "proximal" plans are far from optimal (0.49 vs an exact 0.20 measured on
# a 6x4 problem), so that solver is refused there rather than trained on.
_PROXIMAL_FIXED = Version(version("pot")) > Version("0.9.7.post1")


def cosine_cost(image_tokens: torch.Tensor, audio_tokens: torch.Tensor) -> torch.Tensor:
    """(B, Ni, D), (B, Na, D) → (B, Ni, Na) cosine distance in [0, 2], float32 (see cosine_similarity)."""
    return 1.0 - cosine_similarity(image_tokens, audio_tokens)


def transport_plan(cost: torch.Tensor, solver: str = "sinkhorn", beta: float = 0.5, reg: float = 0.02,
                   iters: int = 1000, tol: float = 1e-6) -> torch.Tensor:
    """Batched OT plan (B, Ni, Na) with uniform marginals, no gradient.

    "sinkhorn" is entropic OT in log domain with regularisation `reg`; at 0.02 on cosine costs of random
    tokens it lands 1–2 % above the exact OT value, as the official IPOT solver (beta 0.5, 30 steps)
    does (0.7–1.8 % above; widths 128–4096). "proximal" is that IPOT-style method itself (step `beta`), on a POT that has it right.
    """
    if solver == "proximal":
        if not _PROXIMAL_FIXED:
            raise ValueError(
                f"POT {version('pot')} has a sign bug in its batched proximal OT solver (PythonOT/POT#842); "
                "use loss.ot_solver='sinkhorn', or a POT release newer than 0.9.7.post1")
        kwargs = dict(reg=None, method="proximal", inner_reg=beta, inner_iter=1)
    elif solver == "sinkhorn":
        kwargs = dict(reg=reg, method="log_sinkhorn")
    else:
        raise ValueError(f"unknown OT solver {solver!r}; use 'proximal' or 'sinkhorn'")
    with torch.no_grad():
        # Stops when every row marginal is within `tol` (checked every 10 iterations) or after `iters`.
        return solve_batch(cost.detach(), max_iter=iters, tol=tol, grad="detach", **kwargs).plan


def avopt_loss(image_tokens: torch.Tensor, audio_tokens: torch.Tensor, reduction: str = "mean",
               **solver_kwargs) -> torch.Tensor:
    """sum(T * C) per sample, averaged over the batch ("mean", a scalar) or not ("none", (B,));
    (B, Ni, D), (B, Na, D) in."""
    cost = cosine_cost(image_tokens, audio_tokens)  # (B, Ni, Na)
    plan = transport_plan(cost, **solver_kwargs)  # (B, Ni, Na), constant
    losses = (plan * cost).sum(dim=(1, 2))  # (B,)
    return losses.mean() if reduction == "mean" else losses
