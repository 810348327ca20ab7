"""Pairwise cosine similarity between token sets, shared by AVOpT's cost and AVACE's attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, D), (B, M, D) → (B, N, M), in float32 even under bf16/fp16 autocast: from a bf16 OT cost the
    Sinkhorn marginals never reach their tolerance (every step runs all iterations), and bf16 would round
    AVACE's similarities before its /temperature. Norms are floored at 1e-3 (projected tokens have norms
    near 1 and above): cosine's gradient grows as 1/norm, and torch's default floor of 1e-12 sent ~1e11
    into an all-zero token (inf in float16)."""
    with torch.autocast(a.device.type, enabled=False):
        return F.normalize(a.float(), dim=-1, eps=1e-3) @ F.normalize(b.float(), dim=-1, eps=1e-3).transpose(1, 2)
